"""The WebSocket transport: messages bounded by MAX_BODY_BYTES (close 1009), compression."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.processes import ServerProcess
from tests.support import UPSERT, KeyPair, LiveServer, serving
from tests.wsclient import GraphQLWS

LIMIT = 4096


@pytest.fixture
async def small(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    async with serving(settings, max_body_bytes=LIMIT) as live:
        yield live


def mutation(description: str) -> dict[str, Any]:
    variables = {"input": {"title": "Big", "description": description}}
    return {"id": "1", "type": "subscribe", "payload": {"query": UPSERT, "variables": variables}}


async def test_a_message_over_the_limit_closes_with_1009_and_writes_nothing(
    small: LiveServer, rsa_keys: KeyPair, mongo: Any
) -> None:
    auth = {"authorization": f"Bearer {rsa_keys.token()}"}
    fits = await GraphQLWS.connect(small.url, payload=auth)
    await fits.send(mutation("x" * 1000))
    answer = await fits.receive()
    assert answer["type"] == "next", answer
    assert answer["payload"]["data"]["upsertRecipe"]["description"] == "x" * 1000
    await fits.close()

    ws = await GraphQLWS.connect(small.url, payload=auth)
    # Multi-byte characters count as bytes: 1,500 characters are 4,500 UTF-8 bytes.
    await ws.send(mutation("é" * 1500))
    code, reason = await ws.close_code()
    assert code == 1009
    assert str(LIMIT) in reason
    assert await mongo.recipes.count_documents({}) == 1


async def test_serve_refuses_an_oversized_message_at_the_websocket_layer(
    rsa_keys: KeyPair, mongodb_uri: str, db_name: str, mongo: Any, tmp_path: Path
) -> None:
    server = ServerProcess(
        {
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DB": db_name,
            "JWT_PUBLIC_KEY_FILE": str(rsa_keys.public_path),
            "APP_ENV": "production",
            "MAX_BODY_BYTES": str(LIMIT),
        },
        tmp_path,
    ).start()
    try:
        ws = await GraphQLWS.connect(
            server.url, payload={"authorization": f"Bearer {rsa_keys.token()}"}
        )
        await ws.connection.send(json.dumps(mutation("x" * (LIMIT + 100))))
        code, _ = await asyncio.wait_for(ws.close_code(), 10)
        assert code == 1009
        assert await mongo.recipes.count_documents({}) == 0
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("deflate", [False, True])
async def test_per_message_deflate_follows_the_setting(
    rsa_keys: KeyPair, mongodb_uri: str, db_name: str, mongo: Any, tmp_path: Path, deflate: bool
) -> None:
    """Browsers always offer permessage-deflate; serve accepts it only when configured."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DB": db_name,
        "JWT_PUBLIC_KEY_FILE": str(rsa_keys.public_path),
        "APP_ENV": "production",
    }
    if deflate:
        env["WS_PER_MESSAGE_DEFLATE"] = "true"
    server = ServerProcess(env, tmp_path).start()
    try:
        ws = await GraphQLWS.connect(
            server.url,
            payload={"authorization": f"Bearer {rsa_keys.token()}"},
            compression="deflate",
        )
        assert ws.connection.response is not None
        negotiated = ws.connection.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in negotiated) is deflate
        await ws.send(mutation("compressible " * 50))
        answer = await ws.receive()
        assert answer["payload"]["data"]["upsertRecipe"]["description"] == "compressible " * 50
        await ws.close()
    finally:
        assert server.stop() == 0
