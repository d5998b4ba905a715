"""Initial sync (Larder only): `pullRecipe` of N seeded recipes with RxDB's pull query, looping
on the checkpoint, against pymongo reading the same pages (the clock, then one index range per
audience value, merged: what the server asks the database for). docs/s each, and the ratio.

The recipes are seeded straight into their own database (as the server would store them) before
a Larder server is started on it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from app.models.recipe import PUBLIC_READER, Recipe
from app.services.state import new_document
from app.services.validation import validate_fields
from app.services.writes import CLOCK_ID, stamp_time
from bench.driver import USER, Bench, BenchError, recipe_input

DB_NAME = "larder_sync"
FIELDS = """id title description ingredients { name quantity unit note } steps tags servings
prepMinutes cookMinutes imageUrl ownerId collaborators visibility version updatedAt _deleted"""
PULL = f"""query PullRecipe($checkpoint: RecipeInputCheckpoint, $limit: Int!) {{
  pullRecipe(checkpoint: $checkpoint, limit: $limit) {{
    documents {{ {FIELDS} }} checkpoint {{ id updatedAt }} }} }}"""


@dataclass
class Sync:
    recipes: int
    batch: int
    graphql_docs_per_s: float
    raw_docs_per_s: float


async def seed(database: Any, count: int) -> None:
    recipes = database.recipes
    await recipes.create_indexes(Recipe.Settings.indexes)
    first = time.time() * 1000 - count - 1000.0
    fields = validate_fields({**recipe_input(0), "collaborators": [], "visibility": "PRIVATE"})
    for start in range(0, count, 1000):
        batch = []
        for i in range(start, min(start + 1000, count)):
            when = stamp_time(first + i)
            doc = new_document(USER, {**fields, "title": f"Seeded {i}"})
            batch.append(
                {
                    "_id": uuid.uuid4().hex,
                    **doc,
                    "stamp": first + i,
                    "created_at": when,
                    "updated_at": when,
                }
            )
        await recipes.insert_many(batch, ordered=False)
    await database.sync_clock.update_one(
        {"_id": CLOCK_ID}, {"$max": {"stamp": first + count - 1}}, upsert=True
    )


async def pull_graphql(client: httpx.AsyncClient, limit: int, most: int = 10**9) -> int:
    checkpoint, docs = None, 0
    for _ in range(most):
        reply = await client.post(
            "/graphql",
            json={"query": PULL, "variables": {"checkpoint": checkpoint, "limit": limit}},
        )
        body = reply.json()
        if body.get("errors"):
            raise BenchError(f"pullRecipe: {body['errors']}")
        bulk = body["data"]["pullRecipe"]
        if not bulk["documents"]:
            return docs
        docs += len(bulk["documents"])
        checkpoint = bulk["checkpoint"]
    return docs


async def pull_raw(database: Any, limit: int, most: int = 10**9) -> int:
    after, docs = 0.0, 0
    for _ in range(most):
        state = await database.sync_clock.find_one({"_id": CLOCK_ID})
        window = {"$gt": after, "$lt": math.nextafter(float(state["stamp"]), math.inf)}
        found: dict[str, dict[str, Any]] = {}
        for audience in (USER, PUBLIC_READER):
            async for raw in database.recipes.find(
                {"stamp": window, "audience": audience},
                sort=[("stamp", 1), ("_id", 1)],
                limit=limit,
            ):
                found[raw["_id"]] = raw
        page = sorted(found.values(), key=lambda d: (d["stamp"], d["_id"]))[:limit]
        if not page:
            return docs
        docs += len(page)
        after = page[-1]["stamp"]
    return docs


async def run(bench: Bench, count: int, batch: int) -> Sync:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.uri, tz_aware=True)
    try:
        database = mongo[DB_NAME]
        await seed(database, count)
        with bench.larder(DB_NAME) as system:
            headers = {"authorization": bench.token()}
            async with httpx.AsyncClient(
                base_url=system.url, headers=headers, timeout=300
            ) as client:
                await pull_graphql(client, batch, most=2)  # warm-up: first requests, caches
                started = time.perf_counter()
                got = await pull_graphql(client, batch)
                graphql = got / (time.perf_counter() - started)
            await pull_raw(database, batch, most=2)
            started = time.perf_counter()
            raw = await pull_raw(database, batch) / (time.perf_counter() - started)
        if got != count:
            raise BenchError(f"pullRecipe returned {got} of {count} recipes")
        return Sync(count, batch, graphql, raw)
    finally:
        await mongo.close()
