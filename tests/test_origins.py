"""Browser origins: CORS_ORIGINS governs HTTP (CORS) and WebSocket handshakes alike.

Browsers send an `Origin` header on every WebSocket handshake and apply no CORS to it, so the
server must check it itself. Python and Node test clients send none unless told to, which is
why every handshake here sets one explicitly, as a browser would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from websockets.exceptions import InvalidStatus

from app.settings import Settings
from tests.support import Api, KeyPair, LiveServer, create, serving
from tests.wsclient import CHANGES, LEGACY, TRANSPORT, GraphQLWS

APP_ORIGIN = "http://app.example.test:5173"
OTHER_ORIGIN = "http://evil.example.test"


@pytest.fixture
async def cross_origin_server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    async with serving(settings, cors_origins=APP_ORIGIN) as live:
        yield live


def auth(keys: KeyPair, user: str = "alice") -> dict[str, Any]:
    return {"authorization": f"Bearer {keys.token(sub=user)}"}


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_listed_origin_gets_live_updates_over_websocket(
    cross_origin_server: LiveServer, rsa_keys: KeyPair, protocol: str
) -> None:
    server = cross_origin_server
    runtime = server.app.state.runtime
    ws = await GraphQLWS.connect(
        server.url, protocol=protocol, payload=auth(rsa_keys), origin=APP_ORIGIN
    )
    await ws.subscribe(CHANGES)
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(1), 10)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await create(Api(http, rsa_keys), title="Seen from the browser")
    event = (await ws.next_data())["recipeChanged"]
    assert (event["kind"], event["recipe"]["title"]) == ("CREATED", "Seen from the browser")
    await ws.close()


@pytest.mark.parametrize("origin", [OTHER_ORIGIN, "null", "http://app.example.test:5174"])
async def test_unlisted_origin_is_refused_before_the_handshake(
    cross_origin_server: LiveServer, rsa_keys: KeyPair, origin: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await GraphQLWS.connect(cross_origin_server.url, payload=auth(rsa_keys), origin=origin)
    assert refused.value.response.status_code == 403


async def test_without_cors_origins_only_same_origin_pages_connect(
    server: LiveServer, rsa_keys: KeyPair
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await GraphQLWS.connect(server.url, payload=auth(rsa_keys), origin=APP_ORIGIN)
    assert refused.value.response.status_code == 403
    # GraphiQL served by Larder itself is same-origin: accepted.
    same = await GraphQLWS.connect(server.url, payload=auth(rsa_keys), origin=server.url)
    await same.close()
    # Non-browser clients (mobile apps, Node, Python) send no Origin: accepted.
    bare = await GraphQLWS.connect(server.url, payload=auth(rsa_keys))
    await bare.close()


async def test_http_cors_follows_the_same_list(cross_origin_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=cross_origin_server.url, timeout=30) as http:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        listed = await http.options("/graphql", headers={"Origin": APP_ORIGIN, **preflight})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == APP_ORIGIN
        unlisted = await http.options("/graphql", headers={"Origin": OTHER_ORIGIN, **preflight})
        assert unlisted.status_code == 400
        assert "access-control-allow-origin" not in unlisted.headers


@pytest.mark.parametrize(
    "value", ["app.example.com", "https://app.example.com/path", "https://", "ftp:/x"]
)
def test_malformed_cors_origins_are_refused_at_startup(value: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(_env_file=None, cors_origins=value)


def test_cors_origins_are_normalised_lists() -> None:
    settings = Settings(_env_file=None, cors_origins=" https://a.example , http://b.test:8080 ,")
    assert settings.cors_origin_list == ["https://a.example", "http://b.test:8080"]
