"""Writer leases: a crashed instance's open transaction must not stall everyone else.

Every write is a transaction that updates the one clock document (see writes.py). If a process
dies inside such a transaction (kill -9, power loss), the database keeps the transaction and
its lock on the clock until its lifetime limit (60 s by default on MongoDB and SecantusDB), and
every other writer conflicts on the clock until then.

So each process runs its transactions on one session whose id it publishes in a lease document
(`sync_writers`), renewed every `interval` seconds and judged by the database's own clock
(`$$NOW` and `hello.localTime`, so host clock skew does not matter). Every process also reaps:
a lease not renewed for `ttl` seconds belongs to a dead (or badly stalled) process, whose
session is killed (`killSessions`), which aborts its transaction and releases the clock.

Killing the session of a process that was merely stalled is safe: its transaction aborts and
is retried like any write conflict; nothing half-written can commit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

log = logging.getLogger("larder.lease")

TTL_SECONDS = 2.0
INTERVAL_SECONDS = 0.5


class WriterLease:
    def __init__(
        self,
        leases: AsyncCollection[dict[str, Any]],
        *,
        ttl: float = TTL_SECONDS,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self._leases = leases
        self._ttl_ms = int(ttl * 1000)
        self._interval = interval
        self.instance = uuid.uuid4().hex
        self._lsid: dict[str, Any] | None = None
        self.reaped = 0  # sessions of dead writers killed by this process

    async def register(self, lsid: dict[str, Any]) -> None:
        """Publish the session this process writes with; done before its first transaction,
        so that no transaction of ours can ever hold the clock unannounced."""
        self._lsid = lsid
        await self._renew()

    async def _renew(self) -> None:
        if self._lsid is None:
            return
        await self._leases.update_one(
            {"_id": self.instance},
            [{"$set": {"lsid": self._lsid, "expires_at": {"$add": ["$$NOW", self._ttl_ms]}}}],
            upsert=True,
        )

    async def reap(self) -> int:
        """Kill the sessions of writers whose lease ran out; returns how many."""
        admin = self._leases.database.client.admin
        # The database's clock, like the one the leases were written with.
        now = (await admin.command("hello"))["localTime"]
        expired = self._leases.find({"_id": {"$ne": self.instance}, "expires_at": {"$lt": now}})
        killed = 0
        async for lease in expired:
            await admin.command("killSessions", [lease["lsid"]])
            # Only if it was not renewed meanwhile (a stalled process that came back).
            await self._leases.delete_one({"_id": lease["_id"], "expires_at": lease["expires_at"]})
            log.warning(
                "aborted the open transaction of a writer that stopped renewing its lease "
                "(a crashed or stalled instance)",
                extra={"instance": lease["_id"]},
            )
            killed += 1
        self.reaped += killed
        return killed

    async def run(self) -> None:
        """Renew ours and reap theirs, forever (cancel to stop)."""
        while True:
            try:
                await self._renew()
                await self.reap()
            except PyMongoError as exc:
                log.warning("writer lease renewal failed: %s", exc)
            await asyncio.sleep(self._interval)

    async def release(self) -> None:
        """On a clean shutdown: nothing of ours is left to reap."""
        if self._lsid is not None:
            await self._leases.delete_one({"_id": self.instance})
