"""Mutation benchmark: upsertRecipe through the real server vs. the same write in raw pymongo.

One run starts a database (MONGODB_URI, else an embedded in-memory SecantusDB daemon), starts
`python -m app serve` as a separate production-mode process on a free port, and measures on the
same database server:

- GraphQL upsertRecipe: POST /graphql `upsertRecipe(input: {id, expectedVersion, title})` over
  one httpx.AsyncClient (HTTP/1.1 keep-alive), database `bench_graphql`;
- pymongo read+CAS: what the service does, find_one then the version-checked update_one, on
  pre-inserted documents of the same shape in database `bench_raw` (same indexes);
- pymongo update_one only: the compare-and-set update without the read.

Every path runs the same number of updates with the same number of concurrent closed-loop
workers; each worker owns a disjoint subset of the recipes, so no update ever conflicts.

    python bench/mutations.py [--updates 2000] [--concurrency 8] [--recipes 200] [--quick]

The bench_graphql and bench_raw databases are dropped before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/mutations.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from app.models.recipe import Recipe
from app.services.writes import stamp_time
from bench.common import (
    UPSERT,
    BenchError,
    BenchKeys,
    CpuMeter,
    Database,
    Operation,
    PhaseResult,
    deal,
    environment_lines,
    graphql,
    make_bench_keys,
    markdown_table,
    open_database,
    process_cpu_seconds,
    read_loadavg,
    recipe_input,
    recipe_title,
    run_phase,
    running_server,
    server_environment,
    split_evenly,
    stored_recipe,
    write_summary,
)

GRAPHQL_DB = "bench_graphql"
RAW_DB = "bench_raw"
OWNER = "bench-user"
QUICK_UPDATES = 200
QUICK_RECIPES = 40
QUICK_WARMUP = 20

GRAPHQL_PATH = "GraphQL upsertRecipe (HTTP)"
RAW_READ_CAS = "pymongo find_one + update_one (raw read+CAS)"
RAW_CAS_ONLY = "pymongo update_one only"
RAW_STAMPED = "pymongo find_one + txn(clock, update_one) (Larder's writes)"

Collection = AsyncCollection[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Options:
    updates: int
    concurrency: int
    recipes: int
    warmup: int
    profile_server: Path | None = None


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=2000, help="updates per path (N)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent workers (C)")
    parser.add_argument("--recipes", type=int, default=200, help="recipes per database (K)")
    parser.add_argument(
        "--warmup", type=int, default=100, help="unmeasured updates per path before measuring"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_UPDATES} updates, {QUICK_RECIPES} recipes, "
        f"{QUICK_WARMUP} warm-up updates",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        metavar="FILE",
        help="run the server under cProfile and write its stats to FILE (read them with "
        "`python -m pstats FILE`); profiling slows the server, so its numbers are not comparable",
    )
    args = parser.parse_args(argv)
    profile = args.profile_server.resolve() if args.profile_server else None
    options = Options(args.updates, args.concurrency, args.recipes, args.warmup, profile)
    if args.quick:
        options = Options(
            QUICK_UPDATES, args.concurrency, min(args.recipes, QUICK_RECIPES), QUICK_WARMUP, profile
        )
    if options.concurrency < 1 or options.updates < 1 or options.warmup < 0:
        parser.error("--updates and --concurrency must be at least 1, --warmup at least 0")
    if options.recipes < options.concurrency:
        parser.error("--recipes must be at least --concurrency (every worker owns recipes)")
    return options


# --------------------------------------------------------------------------- the workload


@dataclass
class Workload:
    """The recipes of one path: their ids dealt to workers, the version each is at."""

    owned: list[list[str]]
    versions: dict[str, int]
    index: dict[str, int]

    @classmethod
    def of(cls, ids_by_index: dict[int, str], concurrency: int) -> Workload:
        ids = [ids_by_index[i] for i in sorted(ids_by_index)]
        return cls(
            owned=deal(ids, concurrency),
            versions=dict.fromkeys(ids, 1),
            index={recipe_id: i for i, recipe_id in ids_by_index.items()},
        )

    def next_title(self, recipe_id: str, current_version: int) -> str:
        return recipe_title(self.index[recipe_id], current_version + 1)


def graphql_updater(client: httpx.AsyncClient, workload: Workload, ids: list[str]) -> Operation:
    """upsertRecipe(input: {id, expectedVersion, title}) on this worker's recipes in turn."""
    turn = itertools.cycle(ids)

    async def update() -> None:
        recipe_id = next(turn)
        expected = workload.versions[recipe_id]
        data = await graphql(
            client,
            UPSERT,
            {
                "input": {
                    "id": recipe_id,
                    "expectedVersion": expected,
                    "title": workload.next_title(recipe_id, expected),
                }
            },
        )
        result = data["upsertRecipe"]
        if result["__typename"] != "Recipe" or result["version"] != expected + 1:
            raise BenchError(f"upsertRecipe {recipe_id} v{expected} did not apply: {result}")
        workload.versions[recipe_id] = expected + 1

    return update


def raw_read_cas_updater(recipes: Collection, workload: Workload, ids: list[str]) -> Operation:
    """What RecipeService.upsert does on the database: find_one, then the version-checked set."""
    turn = itertools.cycle(ids)

    async def update() -> None:
        recipe_id = next(turn)
        current = await recipes.find_one({"_id": recipe_id})
        if current is None:
            raise BenchError(f"{recipe_id} is missing")
        version: int = current["version"]
        await _compare_and_set(recipes, workload, recipe_id, version)

    return update


def raw_stamped_updater(recipes: Collection, workload: Workload, ids: list[str]) -> Operation:
    """The database work of one Larder upsert, unbatched: find_one, then one transaction that
    advances the sync clock and applies the compare-and-set with the stamp."""
    turn = itertools.cycle(ids)
    clock = recipes.database.get_collection("sync_clock")

    async def update() -> None:
        recipe_id = next(turn)
        current = await recipes.find_one({"_id": recipe_id})
        if current is None:
            raise BenchError(f"{recipe_id} is missing")
        version: int = current["version"]

        async def write(session: Any) -> None:
            now = time.time() * 1000
            tick = await clock.find_one_and_update(
                {"_id": "recipes"},
                [
                    {
                        "$set": {
                            "stamp": {"$max": [now, {"$add": [{"$ifNull": ["$stamp", 0]}, 0.001]}]}
                        }
                    }
                ],
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            assert tick is not None
            result = await recipes.update_one(
                {"_id": recipe_id, "version": version, "deleted": False},
                {
                    "$set": {
                        "title": workload.next_title(recipe_id, version),
                        "version": version + 1,
                        "stamp": tick["stamp"],
                        "updated_at": stamp_time(tick["stamp"]),
                    }
                },
                session=session,
            )
            if result.modified_count != 1:
                raise BenchError(f"{recipe_id} v{version}: compare-and-set missed")

        async with recipes.database.client.start_session() as session:
            await session.with_transaction(write)
        workload.versions[recipe_id] = version + 1

    return update


def raw_cas_only_updater(recipes: Collection, workload: Workload, ids: list[str]) -> Operation:
    """Just the compare-and-set update, with the version this worker knows."""
    turn = itertools.cycle(ids)

    async def update() -> None:
        recipe_id = next(turn)
        await _compare_and_set(recipes, workload, recipe_id, workload.versions[recipe_id])

    return update


async def _compare_and_set(
    recipes: Collection, workload: Workload, recipe_id: str, version: int
) -> None:
    result = await recipes.update_one(
        {"_id": recipe_id, "version": version, "deleted": False},
        {
            "$set": {
                "title": workload.next_title(recipe_id, version),
                "version": version + 1,
                "updated_at": stamp_time(time.time() * 1000),
            }
        },
    )
    if result.modified_count != 1:
        raise BenchError(f"update_one {recipe_id} v{version} modified {result.modified_count}")
    workload.versions[recipe_id] = version + 1


# ---------------------------------------------------------------------------- the phases


async def create_graphql_recipes(
    client: httpx.AsyncClient, count: int, concurrency: int
) -> dict[int, str]:
    """Create `count` recipes through upsertRecipe (no id: the server assigns one)."""
    ids: dict[int, str] = {}
    indexes = iter(range(count))

    async def create() -> None:
        index = next(indexes)
        data = await graphql(client, UPSERT, {"input": recipe_input(index)})
        result = data["upsertRecipe"]
        if result["__typename"] != "Recipe" or result["version"] != 1:
            raise BenchError(f"creating recipe {index} failed: {result}")
        ids[index] = result["id"]

    await run_phase("create", [create] * concurrency, split_evenly(count, concurrency))
    return ids


async def insert_raw_recipes(recipes: Collection, count: int) -> dict[int, str]:
    """Insert `count` documents shaped like the server's, with the app's indexes."""
    await recipes.create_indexes(Recipe.Settings.indexes)
    ids = {index: uuid.uuid4().hex for index in range(count)}
    await recipes.insert_many([stored_recipe(ids[i], i, OWNER) for i in range(count)])
    return ids


async def measure(
    name: str,
    make_operation: Callable[[Workload, list[str]], Operation],
    workload: Workload,
    options: Options,
    cpu: CpuMeter,
) -> PhaseResult:
    """Warm up (unmeasured), then run `options.updates` updates over the workers."""
    operations: list[Operation] = [make_operation(workload, ids) for ids in workload.owned]
    if options.warmup:
        await run_phase(
            f"{name} warm-up", operations, split_evenly(options.warmup, len(operations))
        )
    return await run_phase(
        name, operations, split_evenly(options.updates, len(operations)), cpu=cpu
    )


async def run_benchmark(
    options: Options, server_url: str, mongodb_uri: str, keys: BenchKeys, cpu: CpuMeter
) -> tuple[list[PhaseResult], list[str]]:
    notes: list[str] = []
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, tz_aware=True, appname="larder-bench"
    )
    headers = {"Authorization": f"Bearer {keys.token(OWNER)}"}
    limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=64)
    try:
        async with httpx.AsyncClient(
            base_url=server_url, headers=headers, timeout=60.0, limits=limits
        ) as client:
            raw = mongo.get_database(RAW_DB).get_collection("recipes")
            started = time.perf_counter()
            raw_ids = await insert_raw_recipes(raw, options.recipes)
            notes.append(
                f"raw setup: insert_many of {options.recipes} documents (+ the app's 5 indexes) "
                f"in {time.perf_counter() - started:.2f} s"
            )
            started = time.perf_counter()
            graphql_ids = await create_graphql_recipes(client, options.recipes, options.concurrency)
            notes.append(
                f"GraphQL setup: {options.recipes} upsertRecipe creates at concurrency "
                f"{options.concurrency} in {time.perf_counter() - started:.2f} s"
            )

            raw_workload = Workload.of(raw_ids, options.concurrency)
            read_cas = await measure(
                RAW_READ_CAS,
                lambda w, ids: raw_read_cas_updater(raw, w, ids),
                raw_workload,
                options,
                cpu,
            )
            cas_only = await measure(
                RAW_CAS_ONLY,
                lambda w, ids: raw_cas_only_updater(raw, w, ids),
                raw_workload,
                options,
                cpu,
            )
            stamped = await measure(
                RAW_STAMPED,
                lambda w, ids: raw_stamped_updater(raw, w, ids),
                raw_workload,
                options,
                cpu,
            )
            graphql_workload = Workload.of(graphql_ids, options.concurrency)
            over_http = await measure(
                GRAPHQL_PATH,
                lambda w, ids: graphql_updater(client, w, ids),
                graphql_workload,
                options,
                cpu,
            )
            await verify_versions(mongo, raw_workload, graphql_workload)
    finally:
        await mongo.close()
    return [over_http, read_cas, cas_only, stamped], notes


async def verify_versions(
    mongo: AsyncMongoClient[dict[str, Any]], raw: Workload, over_http: Workload
) -> None:
    """Every stored version is the one the workers counted: nothing lost, nothing doubled."""
    for db_name, workload in ((RAW_DB, raw), (GRAPHQL_DB, over_http)):
        recipes = mongo.get_database(db_name).get_collection("recipes")
        stored = {
            doc["_id"]: doc["version"]
            async for doc in recipes.find({}, projection={"version": True})
        }
        if stored != workload.versions:
            raise BenchError(f"{db_name}: stored versions differ from the updates made")


async def drop_databases(mongodb_uri: str) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        for name in (GRAPHQL_DB, RAW_DB):
            await mongo.drop_database(name)
    finally:
        await mongo.close()


# -------------------------------------------------------------------------------- report


def report(
    options: Options,
    database: Database,
    results: list[PhaseResult],
    notes: list[str],
    machine: dict[str, str],
) -> str:
    baseline = next(r for r in results if r.name == RAW_READ_CAS)
    rows = [
        [
            r.name,
            r.ops,
            r.ops_per_second,
            r.latency_ms(50),
            r.latency_ms(99),
            f"{r.ops_per_second / baseline.ops_per_second:.2f}x",
        ]
        for r in results
    ]
    cpu_rows = [
        [
            r.name,
            r.cpu_us_per_op("client"),
            r.cpu_us_per_op("server"),
            r.cpu_us_per_op("database"),
            sum(r.cpu_seconds.values()) / r.seconds,
        ]
        for r in results
    ]
    lines = [
        "## Larder mutation benchmark",
        "",
        *environment_lines(
            ("pymongo", "strawberry-graphql", "starlette", "uvicorn", "httpx", "SecantusDB")
        ),
        f"- database: {database.description}",
        f"- workload: {options.recipes} recipes per path, {options.updates} updates per path, "
        f"concurrency {options.concurrency} (each worker owns its own "
        f"{options.recipes // options.concurrency}+ recipes), {options.warmup} unmeasured "
        "warm-up updates per path first",
        *(f"- {note}" for note in notes),
        "",
        markdown_table(["path", "ops", "ops/s", "p50 ms", "p99 ms", "ratio vs raw read+CAS"], rows),
        "",
        "ratio = ops/s of the path / ops/s of the raw read+CAS path (higher is faster).",
        "",
        "CPU per update (µs of user+sys from /proc/<pid>/stat during the measured phase; "
        "client = this benchmark process):",
        "",
        markdown_table(
            ["path", "client µs/op", "server µs/op", "database µs/op", "CPUs busy"], cpu_rows
        ),
        "",
        f"- load average before: {machine['load_before']}",
        f"- load average after:  {machine['load_after']}",
        f"- server process (pid {machine['server_pid']}): {machine['server_cpu']} s CPU "
        f"(user+sys) over its lifetime, exit code {machine['server_exit']}",
    ]
    if "database_cpu" in machine:
        lines.append(
            f"- database daemon (pid {database.pid}): {machine['database_cpu']} s CPU "
            "(user+sys) over its lifetime"
        )
    if options.profile_server:
        lines.append(
            f"- the server ran under cProfile (stats in {options.profile_server}): "
            "its timings are inflated"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    machine = {"load_before": read_loadavg()}
    with (
        open_database() as database,
        tempfile.TemporaryDirectory(prefix="larder-bench-") as tmp,
    ):
        workdir = Path(tmp)
        asyncio.run(drop_databases(database.uri))
        keys = make_bench_keys(workdir / "keys")
        env = server_environment(database.uri, GRAPHQL_DB, keys.public_path, workdir / "data")
        try:
            profiler = (
                ("-m", "cProfile", "-o", str(options.profile_server))
                if options.profile_server
                else ()
            )
            with running_server(env, workdir / "server", python_args=profiler) as server:
                pids = {"client": os.getpid(), "server": server.pid}
                if database.pid is not None:
                    pids["database"] = database.pid
                cpu = CpuMeter(pids)
                try:
                    results, notes = asyncio.run(
                        run_benchmark(options, server.url, database.uri, keys, cpu)
                    )
                except BenchError:
                    print(server.log_tail(), file=sys.stderr)
                    raise
                machine["server_pid"] = str(server.pid)
                machine["server_cpu"] = f"{process_cpu_seconds(server.pid):.2f}"
                if database.pid is not None:
                    machine["database_cpu"] = f"{process_cpu_seconds(database.pid):.2f}"
            machine["server_exit"] = str(server.process.returncode)
        except BenchError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        finally:
            asyncio.run(drop_databases(database.uri))
    machine["load_after"] = read_loadavg()
    print(report(options, database, results, notes, machine))
    by_name = {r.name: r for r in results}
    raw = by_name[RAW_READ_CAS].ops_per_second
    write_summary(
        "mutations",
        {
            "graphql_ops_per_second": by_name[GRAPHQL_PATH].ops_per_second,
            "raw_ops_per_second": raw,
            "ratio": by_name[GRAPHQL_PATH].ops_per_second / raw if raw else None,
            "load_before": machine["load_before"],
            "load_after": machine["load_after"],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
