"""Writes: 8 HTTP clients, each looping create-then-4-updates of a ~1 KB recipe, closed loop.

The same loop drives each system through `upsertRecipe`, and the bare baseline through pymongo
on a collection with no secondary indexes: insert_one, then per update find_one +
update_one({_id, version}, $set + $inc version) (what the peer does per request). CPU per
upsert = utime+stime of the server and of the daemon over the measured phase / upserts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import AsyncMongoClient

from bench.driver import Api, Bench, CpuMeter, System, percentile, recipe_input

UPDATES_PER_CREATE = 4


class Store(Protocol):
    async def create(self, index: int) -> tuple[str, int]: ...
    async def update(self, rid: str, version: int, index: int) -> int: ...


@dataclass
class Writes:
    ops: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds

    def ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000

    def cpu_ms(self, process: str) -> float | None:
        return self.cpu[process] / self.ops * 1000 if process in self.cpu else None


async def loops(stores: list[Store], count: int, cpu: CpuMeter) -> Writes:
    latencies: list[float] = []

    async def timed(op: Any) -> Any:
        started = time.perf_counter()
        result = await op
        latencies.append(time.perf_counter() - started)
        return result

    async def client(store: Store, offset: int) -> None:
        for i in range(count):
            index = offset + i
            rid, version = await timed(store.create(index))
            for _ in range(UPDATES_PER_CREATE):
                version = await timed(store.update(rid, version, index))

    with cpu:
        started = time.perf_counter()
        await asyncio.gather(*(client(s, n * 1_000_000) for n, s in enumerate(stores)))
        seconds = time.perf_counter() - started
    return Writes(len(latencies), seconds, latencies, cpu.spent)


class GraphQLStore:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def create(self, index: int) -> tuple[str, int]:
        return await self.api.upsert(recipe_input(index))

    async def update(self, rid: str, version: int, index: int) -> int:
        fields = {**recipe_input(index, f"Lemon pancakes {index} v{version}")}
        _, new = await self.api.upsert({"id": rid, "expectedVersion": version, **fields})
        return new


class BareStore:
    """The same reads and writes as the peer, straight through pymongo."""

    def __init__(self, collection: Any) -> None:
        self.recipes = collection

    async def create(self, index: int) -> tuple[str, int]:
        rid = uuid.uuid4().hex
        doc = {"_id": rid, **recipe_input(index), "ownerId": "u", "version": 1, "deleted": False}
        await self.recipes.insert_one(doc)
        return rid, 1

    async def update(self, rid: str, version: int, index: int) -> int:
        before = await self.recipes.find_one({"_id": rid})
        assert before is not None and before["version"] == version
        fields = recipe_input(index, f"Lemon pancakes {index} v{version}")
        done = await self.recipes.update_one(
            {"_id": rid, "version": version}, {"$set": fields, "$inc": {"version": 1}}
        )
        assert done.modified_count == 1
        return version + 1


async def graphql(bench: Bench, system: System, clients: int, warmup: int, count: int) -> Writes:
    """Warm the system up (V8 needs a few thousand requests), then measure."""
    apis = [Api(system, bench.token()) for _ in range(clients)]
    stores: list[Store] = [GraphQLStore(api) for api in apis]
    try:
        await loops(stores, warmup, CpuMeter({}))
        cpu = CpuMeter({"server": system.pid, "database": bench.daemon_pid})
        return await loops(stores, count, cpu)
    finally:
        await asyncio.gather(*(api.close() for api in apis))


async def bare(bench: Bench, clients: int, warmup: int, count: int) -> Writes:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.uri)
    try:
        stores: list[Store] = [BareStore(client.bench_bare.recipes)] * clients
        await loops(stores, warmup, CpuMeter({}))
        return await loops(stores, count, CpuMeter({"database": bench.daemon_pid}))
    finally:
        await client.close()
