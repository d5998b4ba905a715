"""Writes made by other programs directly in MongoDB (e.g. the team's Node API) are adopted:
stamped into sync order and given their derived fields, so pulls and search see them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from app.realtime.events import RecipeEvent
from tests.support import Api
from tests.test_sync import PULL, pull_all


@asynccontextmanager
async def adoptions(runtime: Any, recipe_id: str) -> AsyncIterator[asyncio.Queue[RecipeEvent]]:
    """Events in which `recipe_id` got a new stamp but kept its version: adoptions."""
    queue: asyncio.Queue[RecipeEvent] = asyncio.Queue()

    def select(event: RecipeEvent) -> RecipeEvent | None:
        before, after = event.before, event.after
        if (
            event.id == recipe_id
            and before is not None
            and after is not None
            and after.stamp is not None
            and before.stamp != after.stamp
            and before.version == after.version
        ):
            return event
        return None

    async with runtime.hub.subscribe(select, internal=True) as subscription:

        async def pump() -> None:
            async for event in subscription:
                queue.put_nowait(event)

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()


async def test_a_foreign_insert_and_update_become_pullable_and_searchable(
    api: Api, runtime: Any, mongo: Any
) -> None:
    _, checkpoint, _ = await pull_all(api, user="bob")
    now = datetime.now(UTC)
    async with adoptions(runtime, "node-1") as adopted:
        await mongo.recipes.insert_one(
            {
                "_id": "node-1",
                "title": "Dumplings from Node",
                "owner_id": "alice",
                "collaborators": ["bob"],
                "visibility": "PRIVATE",
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "deleted": False,
            }
        )
        first = await asyncio.wait_for(adopted.get(), 20)
        assert first.after is not None and first.after.readers == ["alice", "bob"]
        docs, checkpoint, _ = await pull_all(api, user="bob", checkpoint=checkpoint)
        assert docs["node-1"]["title"] == "Dumplings from Node"
        found = await api.data('{ recipes(filter: {search: "dumpl"}) { totalCount } }', user="bob")
        assert found["recipes"]["totalCount"] == 1

        # An update that keeps the old stamp (the Node API knows nothing about stamps).
        await mongo.recipes.update_one(
            {"_id": "node-1"}, {"$set": {"title": "Pork dumplings", "version": 2}}
        )
        second = await asyncio.wait_for(adopted.get(), 20)
        assert second.after is not None and second.after.version == 2
    docs, _, _ = await pull_all(api, user="bob", checkpoint=checkpoint)
    assert (docs["node-1"]["title"], docs["node-1"]["version"]) == ("Pork dumplings", 2)
    stored = await mongo.recipes.find_one({"_id": "node-1"})
    assert stored["field_versions"]["title"] == 2 and stored["field_versions"]["steps"] == 1
    assert stored["search_words"] == ["dumplings", "pork"]
    bulk = (await api.data(PULL, {"checkpoint": None, "limit": 10}, user="eve"))["pullRecipe"]
    assert bulk["documents"] == []
