"""Keys from a JWKS URL: cached per Cache-Control, refetched (throttled) for unknown `kid`s.

A flood of tokens with made-up key ids costs at most one fetch per `min_refetch` seconds, and
concurrent requests share one fetch. Fetches use an async HTTP client, so they never block the
event loop. When the key server is down, the last good keys stay in use.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

import httpx

from app.auth.keys import KeyFileError, VerificationKey, jwks_keys

log = logging.getLogger("larder.jwks")

Fetch = Callable[[str], Awaitable[httpx.Response]]
_MAX_AGE = re.compile(r"max-age=(\d+)")
RETRY_AFTER_FAILURE = 10.0
MAX_TTL = 24 * 3600.0


async def _http_get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
        return await client.get(url, headers={"Accept": "application/json"})


class RemoteJwks:
    def __init__(
        self,
        url: str,
        *,
        default_ttl: float = 300.0,
        min_refetch: float = 30.0,
        fetch: Fetch = _http_get,
    ) -> None:
        self.url = url
        self.default_ttl = default_ttl
        self.min_refetch = min_refetch
        self._fetch_url = fetch
        self._keys: list[VerificationKey] = []
        self._expires = 0.0
        self._last_fetch = float("-inf")
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0

    async def candidates(self, alg: str, kid: object) -> list[VerificationKey]:
        now = time.monotonic()
        if now >= self._expires:
            await self.refresh()
        found = self._match(alg, kid)
        if not found and time.monotonic() - self._last_fetch >= self.min_refetch:
            await self.refresh()  # maybe the key was just rotated in
            found = self._match(alg, kid)
        return found

    def _match(self, alg: str, kid: object) -> list[VerificationKey]:
        fitting = [k for k in self._keys if alg in k.algorithms]
        if kid is not None:
            fitting = [k for k in fitting if k.kid is None or k.kid == kid]
        return fitting

    async def refresh(self) -> None:
        """Fetch now (joining a fetch already under way)."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        task = self._inflight
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._inflight is task:
                self._inflight = None

    async def _fetch(self) -> None:
        self._last_fetch = time.monotonic()
        self.fetches += 1
        try:
            response = await self._fetch_url(self.url)
            response.raise_for_status()
            keys = jwks_keys(response.json(), self.url)
        except (httpx.HTTPError, ValueError, KeyFileError) as exc:
            log.warning("JWKS fetch failed, keeping %d known keys: %s", len(self._keys), exc)
            self._expires = time.monotonic() + RETRY_AFTER_FAILURE
            return
        self._keys = keys
        # Never refetch more often than min_refetch, whatever the key server says.
        ttl = max(self._ttl(response.headers.get("cache-control", "")), self.min_refetch)
        self._expires = time.monotonic() + ttl
        log.info("JWKS loaded", extra={"keys": len(keys), "url": self.url})

    def _ttl(self, cache_control: str) -> float:
        directives = cache_control.lower()
        if "no-store" in directives or "no-cache" in directives:
            return 0.0
        found = _MAX_AGE.search(directives)
        return min(float(found.group(1)), MAX_TTL) if found else self.default_ttl
