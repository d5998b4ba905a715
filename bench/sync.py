"""Sync benchmark: RxDB pull/push through the real server vs. the same reads/writes in pymongo.

One run starts a database (MONGODB_URI, else an embedded in-memory SecantusDB daemon), seeds
database `bench_sync` with K recipes of one user (inserted directly, shaped exactly as the
server writes them: `new_document()` of validated fields, plus increasing `stamp`s and the
`sync_clock` advanced to the last one), starts `python -m app serve` as a separate
production-mode process on a free port, and measures on the same database:

- initial pull: one client pulls everything from no checkpoint, as RxDB's GraphQL replication
  does (`pullRecipe(checkpoint, limit)` with the exact query of tests/test_sync.py, looping on
  the returned checkpoint until a pull comes back empty), once per batch size (`--batch`);
- the raw baseline of the pull: what `SyncService.pull` asks the database, in pymongo (read the
  clock, one `find` per audience value over the stamp range (as the server reads), sort
  (stamp, _id), limit = batch, loop on the last (stamp, _id)); and the same again with every
  document validated into the `Recipe` pydantic model, which is the server's first step;
- push: one client pushes P new recipes (`pushRecipe`, rows of `newDocumentState` only) in
  batches (`--push-batch`), one request at a time;
- the raw baseline of the push: what the server's push does on the database, in pymongo: the
  `find({_id: {$in: ids}})` of the current states, then one transaction that advances the clock
  (the same pipeline update as `StampedWriter`) and upserts the documents with `$setOnInsert`
  in one ordered `bulk_write` (as `StampedWriter._apply` does);
  and, as a lower bound, one transaction that advances the clock and `insert_many`s the batch.
  The raw documents are built (validated, derived fields computed) before the clock starts.

Every path is one closed-loop client (RxDB pulls and pushes one request at a time). After the
pushes, a pull from the seed's last checkpoint must return exactly the pushed documents in push
order. Between phases the benchmark waits until the server is idle (its change feed follows the
raw writes too).

    python bench/sync.py [--recipes 10000] [--batch 500,100] [--push 2000]
                         [--push-batch 10,100] [--quick] [--only pull|push]
                         [--profile-server FILE [--profiler cprofile|pyinstrument]]

The bench_sync database is dropped before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/sync.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from app.db import init_models
from app.models.fields import GRAPHQL_NAMES
from app.models.recipe import PUBLIC_READER, Recipe
from app.services.state import new_document
from app.services.sync import MAX_PULL, MAX_PUSH_ROWS
from app.services.validation import validate_fields
from app.services.writes import CLOCK_ID, STEP, stamp_time
from bench.common import (
    BenchError,
    BenchKeys,
    CpuMeter,
    Database,
    ServerProcess,
    environment_lines,
    graphql,
    make_bench_keys,
    markdown_table,
    open_database,
    percentile,
    process_cpu_seconds,
    read_loadavg,
    recipe_input,
    running_server,
    server_environment,
    write_summary,
)

DB_NAME = "bench_sync"
OWNER = "bench-user"
DEFAULT_RECIPES = 10_000
DEFAULT_PUSHES = 2_000
QUICK_RECIPES = 1_000
QUICK_PUSHES = 200
SEED_CHUNK = 1_000
SEED_SPACING_MS = 1.0  # seeded stamps: one per millisecond, ending just before the run
WARMUP_BATCHES = 2  # unmeasured requests per path before its measured phase
SETTLE_INTERVAL = 0.25
SETTLE_IDLE_CPU = 0.05  # CPU seconds per interval under which the server counts as idle
SETTLE_TIMEOUT = 60.0

# One client pushing as fast as it can is the point here, not the per-user rate limit.
UNTHROTTLED = {
    "RATE_LIMIT_MUTATIONS_PER_SECOND": "1000000",
    "RATE_LIMIT_MUTATIONS_BURST": "1000000",
}

# Exactly what an RxDB client sends (the same text as tests/test_sync.py).
FIELDS = """id title description ingredients { name quantity unit note } steps tags servings
prepMinutes cookMinutes imageUrl ownerId collaborators visibility version updatedAt _deleted"""

PULL = f"""query PullRecipe($checkpoint: RecipeInputCheckpoint, $limit: Int!) {{
  pullRecipe(checkpoint: $checkpoint, limit: $limit) {{
    documents {{ {FIELDS} }} checkpoint {{ id updatedAt }} }} }}"""

PUSH = f"""mutation PushRecipe($recipePushRow: [RecipeInputPushRow!]) {{
  pushRecipe(recipePushRow: $recipePushRow) {{ {FIELDS} }} }}"""

PULL_GRAPHQL = "GraphQL pullRecipe (HTTP)"
PULL_RAW = "pymongo clock + find (raw)"
PULL_RAW_PYDANTIC = "pymongo clock + find + Recipe.model_validate"
PUSH_GRAPHQL = "GraphQL pushRecipe (HTTP)"
PUSH_RAW = "pymongo find + txn(clock, bulk_write upserts) (raw)"
PUSH_RAW_INSERT_MANY = "pymongo txn(clock, insert_many)"

Collection = AsyncCollection[dict[str, Any]]
Mongo = AsyncMongoClient[dict[str, Any]]
MongoDatabase = AsyncDatabase[dict[str, Any]]
Checkpoint = dict[str, Any]  # RxDB's {"id": ..., "updatedAt": ...}

_STORED_NAMES = {graphql_name: stored for stored, graphql_name in GRAPHQL_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Options:
    recipes: int
    batches: tuple[int, ...]
    pushes: int
    push_batches: tuple[int, ...]
    only: str | None = None
    profile_server: Path | None = None
    profiler: str = "cprofile"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not sizes:
        raise argparse.ArgumentTypeError("at least one size")
    return sizes


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--recipes", type=int, default=DEFAULT_RECIPES, help="recipes seeded for the pull (K)"
    )
    parser.add_argument(
        "--batch",
        type=_sizes,
        default=(500, 100),
        help=f"pull limits, comma-separated (each <= {MAX_PULL}); default 500,100",
    )
    parser.add_argument(
        "--push", type=int, default=DEFAULT_PUSHES, help="new documents pushed per path (P)"
    )
    parser.add_argument(
        "--push-batch",
        type=_sizes,
        default=(10, 100),
        help=f"rows per push, comma-separated (each <= {MAX_PUSH_ROWS}); default 10,100",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_RECIPES} recipes, {QUICK_PUSHES} pushes per path",
    )
    parser.add_argument(
        "--only", choices=("pull", "push"), help="measure only the pull or only the push"
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        metavar="FILE",
        help="run the server under a profiler and write its output to FILE; profiling slows "
        "the server, so its numbers are not comparable",
    )
    parser.add_argument(
        "--profiler",
        choices=("cprofile", "pyinstrument"),
        default="cprofile",
        help="cprofile: pstats in FILE (`python -m pstats FILE`); pyinstrument (if installed): "
        "the renderer follows FILE's extension (.txt, .html, .pyisession, ...)",
    )
    args = parser.parse_args(argv)
    recipes, pushes = args.recipes, args.push
    if args.quick:
        recipes, pushes = QUICK_RECIPES, QUICK_PUSHES
    if recipes < 1 or pushes < 1:
        parser.error("--recipes and --push must be at least 1")
    if not all(1 <= b <= MAX_PULL for b in args.batch):
        parser.error(f"--batch sizes must be between 1 and {MAX_PULL} (the server's cap)")
    if not all(1 <= b <= MAX_PUSH_ROWS for b in args.push_batch):
        parser.error(f"--push-batch sizes must be between 1 and {MAX_PUSH_ROWS}")
    profile = args.profile_server.resolve() if args.profile_server else None
    return Options(recipes, args.batch, pushes, args.push_batch, args.only, profile, args.profiler)


# --------------------------------------------------------------------------- documents


def stored_fields(index: int) -> dict[str, Any]:
    """The validated editable fields (stored names) of `recipe_input(index)`."""
    fields = {_STORED_NAMES.get(k, k): v for k, v in recipe_input(index).items()}
    clean: dict[str, Any] = validate_fields(
        {**fields, "collaborators": [], "visibility": "PRIVATE"}
    )
    return clean


def server_document(recipe_id: str, index: int, stamp: float) -> dict[str, Any]:
    """The document the server stores for a new recipe `index` written at `stamp`."""
    when = stamp_time(stamp)
    return {
        "_id": recipe_id,
        **new_document(OWNER, stored_fields(index)),
        "stamp": stamp,
        "created_at": when,
        "updated_at": when,
    }


def push_document(recipe_id: str, index: int) -> dict[str, Any]:
    """A recipe created offline, as an RxDB client sends it (no server-owned fields yet)."""
    return {
        "id": recipe_id,
        **recipe_input(index),
        "collaborators": [],
        "visibility": "PRIVATE",
        "_deleted": False,
    }


def new_id() -> str:
    return uuid.uuid4().hex


async def seed(database: MongoDatabase, count: int) -> tuple[list[str], Checkpoint]:
    """Insert `count` recipes in stamp order and advance the clock to the last stamp.

    Returns the ids in sync order and the checkpoint of the last one.
    """
    recipes: Collection = database.get_collection("recipes")
    await recipes.create_indexes(Recipe.Settings.indexes)
    first = time.time() * 1000 - count * SEED_SPACING_MS - 1000.0
    ids = [new_id() for _ in range(count)]
    stamps = [first + i * SEED_SPACING_MS for i in range(count)]
    for start in range(0, count, SEED_CHUNK):
        await recipes.insert_many(
            [
                server_document(ids[i], i, stamps[i])
                for i in range(start, min(start + SEED_CHUNK, count))
            ],
            ordered=False,
        )
    await database.get_collection("sync_clock").update_one(
        {"_id": CLOCK_ID}, {"$max": {"stamp": stamps[-1]}}, upsert=True
    )
    # The pull orders by (stamp, _id): with distinct stamps that is insertion order.
    return ids, {"id": ids[-1], "updatedAt": stamps[-1]}


# ------------------------------------------------------------------------------ results


@dataclass
class SyncResult:
    """One measured path: `docs` documents moved by `len(latencies)` requests."""

    kind: str  # "pull" or "push"
    name: str
    batch: int
    docs: int
    latencies: list[float]
    seconds: float
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def docs_per_second(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000.0

    def cpu_us_per_doc(self, process: str) -> float | None:
        spent = self.cpu_seconds.get(process)
        return None if spent is None or not self.docs else spent / self.docs * 1e6


# A phase body appends each request's latency and returns the documents it moved.
Body = Callable[[list[float]], Awaitable[int]]


async def measure(kind: str, name: str, batch: int, body: Body, cpu: CpuMeter) -> SyncResult:
    latencies: list[float] = []
    before = cpu.sample()
    started = time.perf_counter()
    docs = await body(latencies)
    seconds = time.perf_counter() - started
    spent = CpuMeter.delta(before, cpu.sample())
    print(
        f"  {kind} {name} batch {batch}: {docs} docs in {seconds:.2f} s "
        f"({docs / seconds if seconds else 0:,.0f} docs/s)",
        file=sys.stderr,
    )
    return SyncResult(kind, name, batch, docs, latencies, seconds, spent)


async def settle(pid: int) -> float:
    """Wait until process `pid` is idle (its change feed has caught up); the seconds waited."""
    started = time.monotonic()
    last = process_cpu_seconds(pid)
    while time.monotonic() - started < SETTLE_TIMEOUT:
        await asyncio.sleep(SETTLE_INTERVAL)
        now = process_cpu_seconds(pid)
        if now - last < SETTLE_IDLE_CPU:
            break
        last = now
    return time.monotonic() - started


# ---------------------------------------------------------------------------------- pull


async def pull_graphql(
    client: httpx.AsyncClient,
    limit: int,
    latencies: list[float],
    *,
    checkpoint: Checkpoint | None = None,
    max_requests: int | None = None,
) -> list[str]:
    """RxDB's pull loop: from `checkpoint`, until a pull returns no documents."""
    ids: list[str] = []
    while max_requests is None or len(latencies) < max_requests:
        started = time.perf_counter()
        data = await graphql(client, PULL, {"checkpoint": checkpoint, "limit": limit})
        latencies.append(time.perf_counter() - started)
        bulk = data["pullRecipe"]
        documents = bulk["documents"]
        if not documents:
            break
        ids.extend(d["id"] for d in documents)
        checkpoint = bulk["checkpoint"]
    return ids


async def pull_raw(
    database: MongoDatabase,
    limit: int,
    latencies: list[float],
    *,
    validate: bool = False,
    max_requests: int | None = None,
) -> list[str]:
    """What `SyncService.pull` asks the database, batch after batch, from no checkpoint."""
    recipes: Collection = database.get_collection("recipes")
    clock: Collection = database.get_collection("sync_clock")
    ids: list[str] = []
    after = 0.0
    while max_requests is None or len(latencies) < max_requests:
        started = time.perf_counter()
        state = await clock.find_one({"_id": CLOCK_ID})
        upper = float(state["stamp"]) if state and state.get("stamp") is not None else 0.0
        # The same reads as the server: one index range per audience value, merged.
        window = {"$gt": after, "$lt": math.nextafter(upper, math.inf)}
        found: dict[str, dict[str, Any]] = {}
        for audience in (OWNER, PUBLIC_READER):
            async for raw in recipes.find(
                {"stamp": window, "audience": audience},
                sort=[("stamp", 1), ("_id", 1)],
                limit=limit,
            ):
                found[raw["_id"]] = raw
        documents = sorted(found.values(), key=lambda d: (d["stamp"], d["_id"]))[:limit]
        if validate:
            for raw in documents:
                Recipe.model_validate(raw)
        latencies.append(time.perf_counter() - started)
        if not documents:
            break
        ids.extend(d["_id"] for d in documents)
        after = documents[-1]["stamp"]
    return ids


def check_order(name: str, got: Sequence[str], expected: Sequence[str]) -> None:
    if list(got) != list(expected):
        missing = len(set(expected) - set(got))
        raise BenchError(
            f"{name}: got {len(got)} documents ({missing} missing), expected {len(expected)} "
            "in sync order"
        )


@dataclass(frozen=True, slots=True)
class Bench:
    """What every phase uses: the options, both clients, the meters."""

    options: Options
    client: httpx.AsyncClient
    mongo: Mongo
    database: MongoDatabase
    cpu: CpuMeter
    server_pid: int


Pull = Callable[[list[float], int | None], Awaitable[list[str]]]


async def run_pulls(bench: Bench, seeded: list[str]) -> list[SyncResult]:
    """Every pull path per batch size, each checked to return the seed in sync order."""
    results: list[SyncResult] = []
    for batch in bench.options.batches:

        def over_http(
            latencies: list[float], most: int | None, batch: int = batch
        ) -> Awaitable[list[str]]:
            return pull_graphql(bench.client, batch, latencies, max_requests=most)

        def raw(
            latencies: list[float], most: int | None, batch: int = batch
        ) -> Awaitable[list[str]]:
            return pull_raw(bench.database, batch, latencies, max_requests=most)

        def validated(
            latencies: list[float], most: int | None, batch: int = batch
        ) -> Awaitable[list[str]]:
            return pull_raw(bench.database, batch, latencies, validate=True, max_requests=most)

        paths: list[tuple[str, Pull]] = [
            (PULL_GRAPHQL, over_http),
            (PULL_RAW, raw),
            (PULL_RAW_PYDANTIC, validated),
        ]
        for name, pull in paths:
            await pull([], WARMUP_BATCHES)
            await settle(bench.server_pid)
            pulled: list[str] = []

            async def body(
                latencies: list[float], pull: Pull = pull, pulled: list[str] = pulled
            ) -> int:
                pulled.extend(await pull(latencies, None))
                return len(pulled)

            results.append(await measure("pull", name, batch, body, bench.cpu))
            check_order(f"{name} (batch {batch})", pulled, seeded)
    return results


# ---------------------------------------------------------------------------------- push


def batches_of(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


async def push_graphql(
    client: httpx.AsyncClient, batches: list[list[tuple[str, int]]], latencies: list[float]
) -> int:
    pushed = 0
    for batch in batches:
        rows = [{"newDocumentState": push_document(i, index)} for i, index in batch]
        started = time.perf_counter()
        data = await graphql(client, PUSH, {"recipePushRow": rows})
        latencies.append(time.perf_counter() - started)
        if data["pushRecipe"]:
            raise BenchError(f"pushRecipe returned {len(data['pushRecipe'])} conflicts")
        pushed += len(rows)
    return pushed


async def reserve_stamps(clock: Collection, session: AsyncClientSession, count: int) -> list[float]:
    """`StampedWriter._reserve`: advance the clock by `count` stamps inside the transaction."""
    now = time.time() * 1000
    state = await clock.find_one_and_update(
        {"_id": CLOCK_ID},
        [
            {
                "$set": {
                    "stamp": {
                        "$max": [
                            now + STEP * (count - 1),
                            {"$add": [{"$ifNull": ["$stamp", 0]}, STEP * count]},
                        ]
                    }
                }
            }
        ],
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if state is None:
        raise BenchError("the clock upsert returned nothing")
    last = float(state["stamp"])
    return [last - STEP * (count - 1 - i) for i in range(count)]


async def push_raw(
    mongo: Mongo,
    database: MongoDatabase,
    batches: list[list[dict[str, Any]]],
    latencies: list[float],
    *,
    insert_many: bool = False,
) -> int:
    """The push's database work: read the current states, then one transaction per batch.

    `batches` hold complete documents without `stamp`, `created_at` and `updated_at`.
    """
    recipes: Collection = database.get_collection("recipes")
    clock: Collection = database.get_collection("sync_clock")
    pushed = 0
    for batch in batches:
        started = time.perf_counter()
        if not insert_many:
            ids = [doc["_id"] for doc in batch]
            existing = await recipes.find({"_id": {"$in": ids}}).to_list()
            if existing:
                raise BenchError(f"{len(existing)} of the new ids already exist")

        async def write(session: AsyncClientSession, batch: list[dict[str, Any]] = batch) -> int:
            stamps = await reserve_stamps(clock, session, len(batch))
            stamped = [
                {**doc, "stamp": s, "created_at": stamp_time(s), "updated_at": stamp_time(s)}
                for doc, s in zip(batch, stamps, strict=True)
            ]
            if insert_many:
                await recipes.insert_many(stamped, session=session)
                return len(stamped)
            outcome = await recipes.bulk_write(
                [
                    UpdateOne(
                        {"_id": doc["_id"]},
                        {"$setOnInsert": {k: v for k, v in doc.items() if k != "_id"}},
                        upsert=True,
                    )
                    for doc in stamped
                ],
                ordered=True,
                session=session,
            )
            return outcome.upserted_count

        async with mongo.start_session() as session:
            created: int = await session.with_transaction(write)
        latencies.append(time.perf_counter() - started)
        if created != len(batch):
            raise BenchError(f"only {created} of {len(batch)} documents were created")
        pushed += created
    return pushed


@dataclass
class PushPlan:
    """The documents one push path writes, in push order (warm-up ones first)."""

    warmup: list[list[Any]]
    measured: list[list[Any]]
    ids: list[str] = field(default_factory=list)


def plan_graphql(first_index: int, count: int, batch: int) -> PushPlan:
    entries = [(new_id(), first_index + k) for k in range(count)]
    split = min(WARMUP_BATCHES * batch, count)
    plan = PushPlan(batches_of(entries[:split], batch), batches_of(entries[split:], batch))
    plan.ids = [recipe_id for recipe_id, _ in entries]
    return plan


def plan_raw(first_index: int, count: int, batch: int) -> PushPlan:
    # Built before the clock starts: validation and derived fields are not database work.
    docs = [
        {"_id": new_id(), **new_document(OWNER, stored_fields(first_index + k))}
        for k in range(count)
    ]
    split = min(WARMUP_BATCHES * batch, count)
    plan = PushPlan(batches_of(docs[:split], batch), batches_of(docs[split:], batch))
    plan.ids = [doc["_id"] for doc in docs]
    return plan


Push = Callable[[list[list[Any]], list[float]], Awaitable[int]]


async def run_pushes(bench: Bench) -> tuple[list[SyncResult], list[str]]:
    """Every push path per batch size; returns the results and all pushed ids in push order."""
    results: list[SyncResult] = []
    pushed: list[str] = []
    # Each path pushes `options.pushes` measured documents plus its warm-up batches.
    next_index = bench.options.recipes
    for batch in bench.options.push_batches:
        count = bench.options.pushes + WARMUP_BATCHES * batch
        over_http = plan_graphql(next_index, count, batch)
        raw = plan_raw(next_index + count, count, batch)
        bulk = plan_raw(next_index + 2 * count, count, batch)
        next_index += 3 * count

        def via_graphql(batches: list[list[Any]], latencies: list[float]) -> Awaitable[int]:
            return push_graphql(bench.client, batches, latencies)

        def via_pymongo(batches: list[list[Any]], latencies: list[float]) -> Awaitable[int]:
            return push_raw(bench.mongo, bench.database, batches, latencies)

        def via_insert_many(batches: list[list[Any]], latencies: list[float]) -> Awaitable[int]:
            return push_raw(bench.mongo, bench.database, batches, latencies, insert_many=True)

        paths: list[tuple[str, PushPlan, Push]] = [
            (PUSH_GRAPHQL, over_http, via_graphql),
            (PUSH_RAW, raw, via_pymongo),
            (PUSH_RAW_INSERT_MANY, bulk, via_insert_many),
        ]
        for name, plan, push in paths:
            await push(plan.warmup, [])
            await settle(bench.server_pid)

            async def body(latencies: list[float], push: Push = push, plan: PushPlan = plan) -> int:
                return await push(plan.measured, latencies)

            results.append(await measure("push", name, batch, body, bench.cpu))
            pushed.extend(plan.ids)
    await settle(bench.server_pid)
    return results, pushed


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True, slots=True)
class Seed:
    ids: list[str]  # in sync order
    checkpoint: Checkpoint  # of the last one
    seconds: float


async def run_benchmark(
    options: Options,
    server: ServerProcess,
    *,
    mongodb_uri: str,
    keys: BenchKeys,
    cpu: CpuMeter,
    seed: Seed,
) -> tuple[list[SyncResult], list[str]]:
    notes: list[str] = []
    results: list[SyncResult] = []
    mongo: Mongo = AsyncMongoClient(mongodb_uri, tz_aware=True, appname="larder-bench")
    headers = {"Authorization": f"Bearer {keys.token(OWNER)}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers=headers, timeout=120.0, limits=limits
        ) as client:
            # Beanie must know the collection before Recipe.model_validate (as in the server).
            database = await init_models(mongo, DB_NAME)
            bench = Bench(options, client, mongo, database, cpu, server.pid)
            if options.only != "push":
                results += await run_pulls(bench, seed.ids)
            if options.only != "pull":
                pushes, pushed = await run_pushes(bench)
                results += pushes
                started = time.perf_counter()
                after_seed = await pull_graphql(
                    client, MAX_PULL, [], checkpoint=dict(seed.checkpoint)
                )
                check_order("pull after the pushes", after_seed, pushed)
                notes.append(
                    f"verified: a GraphQL pull from the seed's last checkpoint returned the "
                    f"{len(pushed)} pushed documents (warm-up ones included) in push order "
                    f"({time.perf_counter() - started:.2f} s)"
                )
    finally:
        await mongo.close()
    return results, notes


async def seed_database(mongodb_uri: str, count: int) -> Seed:
    mongo: Mongo = AsyncMongoClient(mongodb_uri, tz_aware=True, appname="larder-bench")
    try:
        await mongo.drop_database(DB_NAME)
        started = time.perf_counter()
        ids, checkpoint = await seed(mongo.get_database(DB_NAME), count)
        return Seed(ids, checkpoint, time.perf_counter() - started)
    finally:
        await mongo.close()


async def drop_database(mongodb_uri: str) -> None:
    mongo: Mongo = AsyncMongoClient(mongodb_uri)
    try:
        await mongo.drop_database(DB_NAME)
    finally:
        await mongo.close()


# -------------------------------------------------------------------------------- report


def _table(results: list[SyncResult], baseline_name: str) -> str:
    baselines = {r.batch: r for r in results if r.name == baseline_name}
    rows = []
    for r in results:
        base = baselines.get(r.batch)
        ratio = (
            f"{r.docs_per_second / base.docs_per_second:.2f}x"
            if base and base.docs_per_second
            else "-"
        )
        rows.append(
            [
                r.name,
                r.batch,
                r.docs,
                r.requests,
                r.seconds,
                r.docs_per_second,
                r.latency_ms(50),
                r.latency_ms(99),
                ratio,
            ]
        )
    return markdown_table(
        [
            "path",
            "batch",
            "docs",
            "requests",
            "seconds",
            "docs/s",
            "p50 ms/request",
            "p99 ms/request",
            "ratio vs raw",
        ],
        rows,
    )


def report(
    options: Options,
    database: Database,
    results: list[SyncResult],
    notes: list[str],
    machine: dict[str, str],
) -> str:
    pulls = [r for r in results if r.kind == "pull"]
    pushes = [r for r in results if r.kind == "push"]
    lines = [
        "## Larder sync benchmark (RxDB pull/push)",
        "",
        *environment_lines(
            ("pymongo", "strawberry-graphql", "pydantic", "starlette", "uvicorn", "httpx")
        ),
        f"- database: {database.description}, database `{DB_NAME}`",
        f"- workload: {options.recipes} seeded recipes of one user, pulled from no checkpoint "
        f"with limit {', '.join(map(str, options.batches))}; {options.pushes} new recipes "
        f"pushed per path with {', '.join(map(str, options.push_batches))} rows per push; "
        f"one client, one request at a time, {WARMUP_BATCHES} unmeasured requests per path "
        "first; the server's per-user mutation rate limit raised out of the way",
        *(f"- {note}" for note in notes),
    ]
    if pulls:
        lines += [
            "",
            "### Initial pull",
            "",
            _table(pulls, PULL_RAW),
            "",
            f"ratio = docs/s of the path / docs/s of `{PULL_RAW}` at the same batch size. "
            "requests include the final empty pull that ends the loop.",
        ]
    if pushes:
        lines += [
            "",
            "### Push (new documents)",
            "",
            _table(pushes, PUSH_RAW),
            "",
            f"ratio = docs/s of the path / docs/s of `{PUSH_RAW}` at the same batch size.",
        ]
    cpu_rows = [
        [
            r.kind,
            r.name,
            r.batch,
            r.cpu_us_per_doc("client"),
            r.cpu_us_per_doc("server"),
            r.cpu_us_per_doc("database"),
            sum(r.cpu_seconds.values()) / r.seconds if r.seconds else None,
        ]
        for r in results
    ]
    lines += [
        "",
        "CPU per document (µs of user+sys from /proc/<pid>/stat during the measured phase; "
        "client = this benchmark process, which also runs the raw paths):",
        "",
        markdown_table(
            [
                "phase",
                "path",
                "batch",
                "client µs/doc",
                "server µs/doc",
                "database µs/doc",
                "CPUs busy",
            ],
            cpu_rows,
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
            f"- the server ran under {options.profiler} (output in {options.profile_server}): "
            "its timings are inflated"
        )
    return "\n".join(lines)


def profiler_args(options: Options) -> tuple[str, ...]:
    if options.profile_server is None:
        return ()
    if options.profiler == "pyinstrument":
        return ("-m", "pyinstrument", "-o", str(options.profile_server))
    return ("-m", "cProfile", "-o", str(options.profile_server))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    machine = {"load_before": read_loadavg()}
    with (
        open_database() as database,
        tempfile.TemporaryDirectory(prefix="larder-bench-") as tmp,
    ):
        workdir = Path(tmp)
        try:
            # Seeded before the server starts, so its change feed does not replay the seed.
            seeded = asyncio.run(seed_database(database.uri, options.recipes))
            keys = make_bench_keys(workdir / "keys")
            env = server_environment(
                database.uri, DB_NAME, keys.public_path, workdir / "data", **UNTHROTTLED
            )
            with running_server(
                env, workdir / "server", python_args=profiler_args(options)
            ) as server:
                pids = {"client": os.getpid(), "server": server.pid}
                if database.pid is not None:
                    pids["database"] = database.pid
                cpu = CpuMeter(pids)
                try:
                    results, notes = asyncio.run(
                        run_benchmark(
                            options,
                            server,
                            mongodb_uri=database.uri,
                            keys=keys,
                            cpu=cpu,
                            seed=seeded,
                        )
                    )
                except BenchError:
                    print(server.log_tail(), file=sys.stderr)
                    raise
                notes.insert(
                    0,
                    f"seed: {options.recipes} documents inserted with insert_many (chunks of "
                    f"{SEED_CHUNK}, the app's indexes created first) in {seeded.seconds:.2f} s",
                )
                machine["server_pid"] = str(server.pid)
                machine["server_cpu"] = f"{process_cpu_seconds(server.pid):.2f}"
                if database.pid is not None:
                    machine["database_cpu"] = f"{process_cpu_seconds(database.pid):.2f}"
            machine["server_exit"] = str(server.process.returncode)
        except BenchError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        finally:
            asyncio.run(drop_database(database.uri))
    machine["load_after"] = read_loadavg()
    print(report(options, database, results, notes, machine))
    pulls = {(r.name, r.batch): r.docs_per_second for r in results if r.kind == "pull"}
    summary: dict[str, object] = {
        "load_before": machine.get("load_before"),
        "load_after": machine.get("load_after"),
    }
    for batch in options.batches:
        graphql = pulls.get((PULL_GRAPHQL, batch))
        raw = pulls.get((PULL_RAW, batch))
        if graphql is not None and raw:
            summary[f"pull_ratio_batch_{batch}"] = graphql / raw
            summary[f"pull_docs_per_second_batch_{batch}"] = graphql
    write_summary("sync", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
