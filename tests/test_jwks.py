"""JWT_JWKS_URL against a real local JWKS server that rotates keys and counts fetches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.keys import public_jwk
from app.auth.verifier import AuthError, TokenVerifier
from app.main import create_app
from app.settings import Settings
from tests.support import Api, KeyPair, LiveServer, make_key_pair


@dataclass
class KeyServer:
    keys: list[KeyPair] = field(default_factory=list)
    cache_control: str = "public, max-age=600"
    fetches: int = 0
    down: bool = False

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            self.fetches += 1
            if self.down:
                return Response("unavailable", status_code=503)
            document = {"keys": [public_jwk(k.private.public_key()) for k in self.keys]}
            return Response(
                json.dumps(document),
                media_type="application/json",
                headers={"Cache-Control": self.cache_control},
            )

        return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])


@pytest.fixture
async def key_server(tmp_path: Path) -> AsyncIterator[tuple[KeyServer, str]]:
    state = KeyServer(keys=[make_key_pair(tmp_path / "k1", "rsa")])
    live = LiveServer(state.app())
    await live.start()
    yield state, f"{live.url}/.well-known/jwks.json"
    await live.stop()


def verifier_for(url: str, **overrides: Any) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(_env_file=None, jwt_jwks_url=url, **overrides))


async def test_keys_are_fetched_once_and_cached(key_server: tuple[KeyServer, str]) -> None:
    server, url = key_server
    verifier = verifier_for(url)
    for user in ("a", "b", "c"):
        assert (await verifier.verify(server.keys[0].token(sub=user))).id == user
    assert server.fetches == 1


async def test_a_rotated_in_key_is_fetched_by_its_kid(
    key_server: tuple[KeyServer, str], tmp_path: Path
) -> None:
    server, url = key_server
    verifier = verifier_for(url, jwt_jwks_min_refetch_seconds=0)
    assert (await verifier.verify(server.keys[0].token(sub="a"))).id == "a"
    rotated = make_key_pair(tmp_path / "k2", "ec")
    server.keys.append(rotated)  # the identity provider publishes a new key
    assert (await verifier.verify(rotated.token(sub="b"))).id == "b"
    assert server.fetches == 2  # one refetch, for the unknown kid
    assert (await verifier.verify(server.keys[0].token(sub="c"))).id == "c"
    assert server.fetches == 2


async def test_junk_kids_do_not_hammer_the_key_server(
    key_server: tuple[KeyServer, str], tmp_path: Path
) -> None:
    server, url = key_server
    verifier = verifier_for(url, jwt_jwks_min_refetch_seconds=30)
    assert (await verifier.verify(server.keys[0].token(sub="a"))).id == "a"
    junk = make_key_pair(tmp_path / "junk", "rsa")
    for n in range(50):  # a flood of tokens with made-up key ids
        with pytest.raises(AuthError) as refused:
            await verifier.verify(junk.token(sub=f"x{n}", kid=f"junk-{n}"))
        assert refused.value.reason == "unknown_key"
    assert server.fetches == 1, "junk kids must not hammer the key server"


async def test_cache_control_is_honoured(key_server: tuple[KeyServer, str]) -> None:
    server, url = key_server
    server.cache_control = "no-store"
    verifier = verifier_for(url, jwt_jwks_min_refetch_seconds=0)
    await verifier.verify(server.keys[0].token(sub="a"))
    await verifier.verify(server.keys[0].token(sub="b"))
    assert server.fetches == 2
    # ...but never more often than JWT_JWKS_MIN_REFETCH_SECONDS, whatever the server says.
    throttled = verifier_for(url, jwt_jwks_min_refetch_seconds=30)
    await throttled.verify(server.keys[0].token(sub="c"))
    await throttled.verify(server.keys[0].token(sub="d"))
    assert server.fetches == 3


async def test_known_keys_survive_a_key_server_outage(key_server: tuple[KeyServer, str]) -> None:
    server, url = key_server
    server.cache_control = "max-age=0"
    verifier = verifier_for(url, jwt_jwks_min_refetch_seconds=0)
    await verifier.verify(server.keys[0].token(sub="a"))
    server.down = True
    assert (await verifier.verify(server.keys[0].token(sub="b"))).id == "b"
    assert server.fetches == 2


async def test_the_app_verifies_against_a_jwks_url(
    key_server: tuple[KeyServer, str], mongodb_uri: str, db_name: str, mongo: Any
) -> None:
    server, url = key_server
    settings = Settings(
        _env_file=None, mongodb_uri=mongodb_uri, mongodb_db=db_name, jwt_jwks_url=url
    )
    live = LiveServer(create_app(settings))
    await live.start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            data = await Api(http, server.keys[0]).data("{ me { id } }")
            assert data["me"]["id"] == "alice"
    finally:
        await live.stop()


@pytest.mark.parametrize("app_env", ["production", "development"])
async def test_serve_verifies_tokens_against_jwt_jwks_url(
    key_server: tuple[KeyServer, str],
    mongodb_uri: str,
    db_name: str,
    mongo: Any,
    tmp_path: Path,
    app_env: str,
) -> None:
    """`python -m app serve` with only JWT_JWKS_URL set: it starts (no key file asked for, no
    development key added) and accepts exactly the tokens signed by the served key."""
    from tests.processes import ServerProcess

    server, url = key_server
    process = ServerProcess(
        {
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DB": db_name,
            "JWT_JWKS_URL": url,
            "APP_ENV": app_env,
            "DATA_DIR": str(tmp_path / "data"),
        },
        tmp_path,
    )
    # In a thread: the JWKS server runs on this event loop and serve fetches from it at startup.
    await asyncio.to_thread(process.start)
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            api = Api(http, server.keys[0])
            assert (await api.data("{ me { id } }", user="jwks-user"))["me"]["id"] == "jwks-user"
            stranger = make_key_pair(tmp_path / "other", "rsa")
            refused = await api.post("{ me { id } }", token=stranger.token(sub="mallory"))
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        assert process.stop() == 0
    assert not (tmp_path / "data" / "keys").exists(), "a development key was created"
