"""`python -m app demo`: about fifty recipes, idempotent, written through the write path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from app.demo.data import RECIPES
from app.embedded import URI_FILE, EmbeddedDatabase
from tests.processes import clean_env
from tests.support import LIST, Api


def _demo(cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=clean_env(DATA_DIR=str(cwd / "data"), **env),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def _titles(api: Api, user: str, search: str | None = None) -> set[str]:
    data = await api.data(LIST, {"filter": {"search": search}, "first": 100}, user=user)
    assert not data["recipes"]["pageInfo"]["hasNextPage"]
    return {edge["node"]["title"] for edge in data["recipes"]["edges"]}


async def test_demo_loads_once_and_viewers_see_only_what_they_may(
    api: Api, mongo: Any, mongodb_uri: str, db_name: str, tmp_path: Path
) -> None:
    env = {"MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name}
    assert "50 created" in _demo(tmp_path, **env)
    assert "50 already there" in _demo(tmp_path, **env)  # no duplicates, no new versions
    assert len(RECIPES) == 50
    docs = await mongo.recipes.find({}).to_list()
    assert sorted(d["_id"] for d in docs) == sorted(r.id for r in RECIPES)
    assert {d["version"] for d in docs} == {1}
    assert all(d["search_words"] and d["stamp"] > 0 for d in docs)  # the write path's fields
    assert {d["owner_id"] for d in docs} == {"dev", "alice", "bob"}

    # Search (by word prefix, across title, tags and ingredients) finds demo recipes.
    assert await _titles(api, "dev", "pancake") == {"Buttermilk pancakes"}
    assert "Pizza margherita" not in await _titles(api, "dev", "mozzarella")  # bob's, private
    assert await _titles(api, "bob", "mozzarella") == {"Pizza margherita"}

    public = {r.title for r in RECIPES if r.public}
    assert await _titles(api, "carol") == public  # a stranger sees the public ones only
    alice = {r.title for r in RECIPES if r.owner == "alice" or "alice" in r.shared or r.public}
    assert await _titles(api, "alice") == alice
    assert len(public) < len(alice) < len(RECIPES)


async def test_demo_puts_back_an_edited_recipe_as_a_new_version(
    mongo: Any, mongodb_uri: str, db_name: str, tmp_path: Path
) -> None:
    # No server runs here: it would adopt the direct write below concurrently.
    env = {"MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name}
    _demo(tmp_path, **env)
    await mongo.recipes.update_one(
        {"_id": "demo-hummus"}, {"$set": {"title": "Lumpy hummus", "version": 2}}
    )
    assert "1 restored, 49 already there" in _demo(tmp_path, **env)
    doc = await mongo.recipes.find_one({"_id": "demo-hummus"})
    assert doc["title"] == "Smooth hummus" and doc["version"] == 3


async def test_demo_writes_into_the_embedded_database_a_running_server_uses(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    database = EmbeddedDatabase.in_data_dir(data).start()
    try:
        assert (data / URI_FILE).read_text().strip() == database.uri
        assert "50 created" in _demo(tmp_path)  # no MONGODB_URI: the daemon on DATA_DIR
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database.uri)
        try:
            assert await client.larder.recipes.count_documents({}) == 50
        finally:
            await client.close()
    finally:
        database.stop()
    assert not (data / URI_FILE).exists()
