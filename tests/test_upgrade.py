"""Starting on a database written by an earlier version: obsolete indexes go, old recipes
get their search words (through the stamped write path)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pymongo import ASCENDING, DESCENDING, IndexModel

from app.main import create_app
from app.settings import Settings
from tests.support import LIST, Api, KeyPair, LiveServer


async def test_an_old_database_is_upgraded_at_startup(
    settings: Settings, mongo: Any, rsa_keys: KeyPair
) -> None:
    await mongo.recipes.create_indexes(
        [
            IndexModel([("owner_id", ASCENDING), ("updated_at", DESCENDING)], name="owner_updated"),
            IndexModel([("search_terms", ASCENDING)], name="search_terms"),
        ]
    )
    now = datetime.now(UTC)
    old = {
        "title": "Old soup",
        "tags": ["Winter"],
        "owner_id": "alice",
        "version": 3,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
        "stamp": 1000.0,
        "field_versions": {"title": 1},
        "readers": ["alice"],
        "revoked": [],
        "audience": ["alice"],
        "search_terms": ["o", "ol", "old", "s", "so", "sou", "soup", "w", "wi", "win"],
    }
    await mongo.recipes.insert_many([{"_id": f"old{i}", **old} for i in range(70)])
    live = LiveServer(create_app(settings))
    await live.start()
    try:
        names = {i["name"] for i in await (await mongo.recipes.list_indexes()).to_list()}
        assert "owner_updated" not in names and "search_terms" not in names
        docs = await mongo.recipes.find({}).to_list()
        assert len(docs) == 70
        for doc in docs:
            assert doc["search_words"] == ["old", "soup", "winter"]
            assert "search_terms" not in doc
            assert doc["version"] == 3 and doc["stamp"] > 1000.0  # re-stamped, same version
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            api = Api(http, rsa_keys)
            page = await api.data(LIST, {"first": 100, "filter": {"search": "wint so"}})
            assert page["recipes"]["totalCount"] == 70
    finally:
        await live.stop()
