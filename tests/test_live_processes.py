"""Live updates across real server processes: scale-out and a database restart."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from app.embedded import EmbeddedDatabase
from tests.processes import ServerProcess
from tests.support import UPSERT, KeyPair
from tests.wsclient import CHANGES, GraphQLWS


async def wait_for_subscriptions(url: str, count: int, timeout: float = 15) -> None:
    """Across processes there is no event to await: poll the server's own gauge."""
    async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(timeout):
        while True:
            text = (await http.get("/metrics")).text
            found = re.search(r"^larder_subscriptions (\S+)$", text, re.M)
            if found and float(found.group(1)) == count:
                return
            await asyncio.sleep(0.02)


def _server_env(uri: str, db: str, keys: KeyPair) -> dict[str, str]:
    return {
        "MONGODB_URI": uri,
        "MONGODB_DB": db,
        "JWT_PUBLIC_KEY_FILE": str(keys.public_path),
        "APP_ENV": "production",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def two_instances(
    mongodb_uri: str, db_name: str, rsa_keys: KeyPair, tmp_path: Path, mongo: Any
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = _server_env(mongodb_uri, db_name, rsa_keys)
    a = ServerProcess(env, tmp_path).start()
    try:
        b = ServerProcess(env, tmp_path).start()
    except Exception:
        a.stop()
        raise
    yield a, b
    assert a.stop() == 0
    assert b.stop() == 0


async def test_mutation_on_instance_a_reaches_subscriber_on_instance_b(
    two_instances: tuple[ServerProcess, ServerProcess], rsa_keys: KeyPair
) -> None:
    a, b = two_instances
    token = rsa_keys.token(sub="alice")
    ws = await GraphQLWS.connect(b.url, payload={"authorization": f"Bearer {token}"})
    await ws.subscribe(CHANGES)
    await wait_for_subscriptions(b.url, 1)
    async with httpx.AsyncClient(base_url=a.url) as http:
        response = await http.post(
            "/graphql",
            json={"query": UPSERT, "variables": {"input": {"title": "Via A"}}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.json()["data"]["upsertRecipe"]["__typename"] == "Recipe"
    event = (await ws.next_data())["recipeChanged"]
    assert (event["kind"], event["recipe"]["title"]) == ("CREATED", "Via A")
    await ws.close()


async def test_subscriber_misses_nothing_across_a_database_restart(
    rsa_keys: KeyPair, tmp_path: Path
) -> None:
    database = EmbeddedDatabase(storage=str(tmp_path / "db")).start()
    server = ServerProcess(_server_env(database.uri, "larder", rsa_keys), tmp_path).start()
    client: AsyncMongoClient[dict[str, Any]] | None = None
    try:
        ws = await GraphQLWS.connect(
            server.url, payload={"authorization": f"Bearer {rsa_keys.token(sub='alice')}"}
        )
        await ws.subscribe(CHANGES)
        await wait_for_subscriptions(server.url, 1)

        def doc(recipe_id: str, title: str) -> dict[str, Any]:
            now = datetime.now(UTC)
            return {
                "_id": recipe_id,
                "title": title,
                "owner_id": "alice",
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "deleted": False,
            }

        client = AsyncMongoClient(database.uri, tz_aware=True)
        recipes = client.get_database("larder").recipes
        await recipes.insert_one(
            doc("before", "Before the restart"),
        )
        # Stop the daemon right after the write, possibly before the feed has read it.
        await client.close()
        port = database.port
        database.stop()
        database = EmbeddedDatabase(storage=str(tmp_path / "db"), port=port).start()
        client = AsyncMongoClient(database.uri, tz_aware=True)
        recipes = client.get_database("larder").recipes
        await recipes.insert_one(doc("after", "After the restart"))
        titles = [
            (await ws.next_data(timeout=60))["recipeChanged"]["recipe"]["title"] for _ in range(2)
        ]
        assert titles == ["Before the restart", "After the restart"]
        await ws.close()
    finally:
        if client is not None:
            await client.close()
        code = server.stop()
        database.stop()
    assert code == 0, "".join(server.lines[-30:])
