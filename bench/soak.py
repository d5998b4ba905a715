"""Soak benchmark: N WebSocket subscribers and a steady write load for minutes; nothing lost.

One run starts a database (MONGODB_URI on loopback, else an embedded in-memory SecantusDB
daemon) and one production-mode `python -m app serve` process (generated RSA key, limits raised
so that the rate limits are not what is measured), then:

1. creates `--recipes` PUBLIC recipes (as the writer user) and waits for their change events;
2. opens `--subscribers` WebSockets (graphql-transport-ws, one `recipeChanged` subscription
   each), spread over `--users` reader users who may all read the PUBLIC recipes;
3. writes `--rate` upserts per second (open loop, `upsertRecipe(input: {id, expectedVersion,
   title})` over HTTP, round-robin over the recipes) for `--minutes`;
4. waits until every subscriber has every write (or nothing arrives for a while), reads
   /metrics, closes the subscribers and stops the server.

Every (recipe id, version) written and every receipt of every subscriber is tracked. The report
gives the errors (HTTP, GraphQL, WebSocket closes), write->receipt latency (p50/p99, per time
window), events lost (expected receipts - receipts; must be 0), duplicates, the server's VmRSS
at start / after warm-up / at the end, CPU per process and the server's own /metrics figures.
The exit status is 1 when an event was lost or duplicated or any error occurred.

    python bench/soak.py [--subscribers 500] [--rate 20] [--minutes 3] [--users 10]
                         [--recipes 50] [--warmup SECONDS] [--window SECONDS] [--quick]

`--quick` is a smoke run: 50 subscribers for 30 seconds. The bench_soak database is dropped
before and after the run. Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/soak.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.uri_parser import parse_uri

from bench.common import (
    UPSERT,
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
    process_rss_kb,
    read_loadavg,
    recipe_input,
    recipe_title,
    server_environment,
    start_server,
)
from bench.fanout import raise_open_file_limit

DB_NAME = "bench_soak"
WRITER = "bench-writer"
HOST = "127.0.0.1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

DEFAULT_SUBSCRIBERS = 500
DEFAULT_RATE = 20.0
DEFAULT_MINUTES = 3.0
DEFAULT_USERS = 10
DEFAULT_RECIPES = 50
DEFAULT_KEEPALIVE = 60.0
QUICK_SUBSCRIBERS = 50
QUICK_SECONDS = 30.0

CONNECT_CONCURRENCY = 50  # WebSocket handshakes in flight at once while opening
CONNECT_TIMEOUT = 60.0  # per connection: handshake + connection_ack
WRITE_TIMEOUT = 30.0  # per HTTP request
QUIET_TIMEOUT = 20.0  # give up draining after this long without a new receipt
DRAIN_LIMIT = 180.0  # and after this long in all
PIPE_TIMEOUT = 300.0  # for any answer of the subscriber process
REGISTER_TIMEOUT = 120.0  # for the server to count the subscribers as registered
SETUP_BUDGET = 900.0  # the whole run may take the write phase plus this long
SAMPLE_INTERVAL = 1.0  # RSS / CPU sampling
SETTLE_SECONDS = 1.0
GRACE_SECONDS = 1.0  # after the last expected receipt, to catch late duplicates
# Growth of the server's VmRSS from the end of the warm-up to the end of the run that counts
# as "grew": the larger of these (allocator noise is a few MB).
GROWTH_MB = 8.0
GROWTH_FRACTION = 0.05

SUBSCRIPTION = (
    "subscription Soak { recipeChanged { kind version recipe { id title version updatedAt "
    "deleted } } }"
)
TOUCH = """
mutation Touch($input: RecipeInput!) {
  upsertRecipe(input: $input) {
    __typename
    ... on Recipe { id version }
    ... on VersionConflict { currentVersion }
  }
}
"""
VERSION_OF = "query VersionOf($id: ID!) { recipe(id: $id) { version } }"
WS_SUBPROTOCOL = "graphql-transport-ws"

Key = tuple[str, int]  # (recipe id, version)


# ------------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Options:
    subscribers: int
    rate: float
    seconds: float
    users: int
    recipes: int
    warmup: float
    window: float
    keepalive: float
    quick: bool

    @property
    def writes(self) -> int:
        return max(1, round(self.rate * self.seconds))


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--subscribers",
        type=int,
        default=DEFAULT_SUBSCRIBERS,
        help=f"WebSocket subscribers (default {DEFAULT_SUBSCRIBERS})",
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="writes per second (default 20)"
    )
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help="write phase length (default 3)"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=DEFAULT_USERS,
        help=f"reader users the subscribers are spread over (default {DEFAULT_USERS})",
    )
    parser.add_argument(
        "--recipes",
        type=int,
        default=DEFAULT_RECIPES,
        help=f"PUBLIC recipes written in turn (default {DEFAULT_RECIPES})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds at the start of the write phase reported separately (default: "
        "a sixth of the phase, at most 30)",
    )
    parser.add_argument(
        "--window",
        type=float,
        help="seconds per row of the over-time table (default: 30, quick 5)",
    )
    parser.add_argument(
        "--keepalive",
        type=float,
        default=DEFAULT_KEEPALIVE,
        help="the server's WS_KEEPALIVE_SECONDS (ping interval; default 60, the clients "
        "answer every ping)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_SUBSCRIBERS} subscribers for {QUICK_SECONDS:.0f} seconds",
    )
    args = parser.parse_args(argv)
    subscribers = QUICK_SUBSCRIBERS if args.quick else args.subscribers
    seconds = QUICK_SECONDS if args.quick else args.minutes * 60.0
    warmup = args.warmup if args.warmup is not None else min(30.0, seconds / 6)
    window = args.window if args.window is not None else (5.0 if args.quick else 30.0)
    options = Options(
        subscribers=subscribers,
        rate=args.rate,
        seconds=seconds,
        users=min(args.users, subscribers) if subscribers > 0 else args.users,
        recipes=args.recipes,
        warmup=warmup,
        window=window,
        keepalive=args.keepalive,
        quick=args.quick,
    )
    if options.subscribers < 1 or options.users < 1 or options.recipes < 1:
        parser.error("--subscribers, --users and --recipes must be at least 1")
    if options.rate <= 0 or options.seconds <= 0 or options.window <= 0:
        parser.error("--rate, --minutes and --window must be above 0")
    if not 0 <= options.warmup < options.seconds:
        parser.error("--warmup must be at least 0 and shorter than the write phase")
    if not 0 < options.keepalive <= 300:
        parser.error("--keepalive must be in (0, 300] (the server's bounds)")
    return options


# ------------------------------------------------------------------ the subscriber process
#
# Runs in its own process (multiprocessing, spawn). The parent sends it commands over a pipe:
#   ("open", spec)            open spec["count"] subscribers; reply ("ok", {opened, failures,
#                             seconds})
#   ("status",)               reply ("ok", {receipts, closes, pings, rss_kb})
#   ("drain", n, quiet, cap)  wait until every subscriber has n receipts (or `quiet` seconds
#                             pass without one, or `cap` in all); reply ("ok", seconds waited)
#   ("results",)              reply ("ok", the receipts, compactly: see Receipts)
#   ("close",)                close every connection; reply ("ok", seconds)
#   ("exit",)
# Every command is sent with a sequence number that its reply repeats: (n, "ok", value), or
# (n, "error", text). Only builtin types cross the pipe.


class Receiver:
    """One subscriber's receipts: arrival times and (recipe, version) codes, in arrays."""

    __slots__ = ("arrivals", "codes", "ws")

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.arrivals: array[float] = array("d")
        self.codes: array[int] = array("q")


class ClientPool:
    """N WebSocket clients, one receiving task each: `recv`, `json.loads`, append."""

    def __init__(self) -> None:
        self.receivers: list[Receiver] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.recipe_index: dict[str, int] = {}
        self.closes: list[tuple[int, float, int | None, str]] = []
        self.errors: list[str] = []
        self.pings = 0
        self.closing = False

    async def open(self, spec: dict[str, Any]) -> dict[str, Any]:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        started = time.monotonic()
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        tokens: list[str] = spec["tokens"]
        subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})

        async def handshake(index: int) -> Any:
            ws = await connect(
                spec["url"],
                subprotocols=[Subprotocol(WS_SUBPROTOCOL)],
                compression=None,
                ping_interval=None,  # the server's graphql-transport-ws pings are answered
                open_timeout=CONNECT_TIMEOUT,
                close_timeout=10,
                max_queue=None,  # never stop reading: backpressure would be the client's fault
            )
            authorization = tokens[index % len(tokens)]
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"authorization": authorization}})
            )
            ack = json.loads(await ws.recv())
            if ack.get("type") != "connection_ack":
                await ws.close()
                raise BenchError(f"no connection_ack: {str(ack)[:200]}")
            await ws.send(subscribe)
            return ws

        async def one(index: int) -> Any:
            async with limit:
                try:
                    return await asyncio.wait_for(handshake(index), CONNECT_TIMEOUT)
                except Exception as error:
                    return f"{type(error).__name__}: {str(error)[:200]}"

        outcomes = await asyncio.gather(*(one(i) for i in range(spec["count"])))
        failures = [o for o in outcomes if isinstance(o, str)]
        for ws in outcomes:
            if isinstance(ws, str):
                continue
            receiver = Receiver(ws)
            self.tasks.append(asyncio.create_task(self._receive(len(self.receivers), receiver)))
            self.receivers.append(receiver)
        return {
            "opened": len(self.receivers),
            "failures": failures,
            "seconds": time.monotonic() - started,
        }

    async def _receive(self, index: int, receiver: Receiver) -> None:
        from websockets.exceptions import ConnectionClosed

        clock = time.monotonic
        loads = json.loads
        ws = receiver.ws
        add_arrival = receiver.arrivals.append
        add_code = receiver.codes.append
        recipe_index = self.recipe_index
        try:
            while True:
                raw = await ws.recv(decode=False)
                arrived = clock()
                message = loads(raw)
                kind = message.get("type")
                if kind == "next":
                    payload = message["payload"]
                    if payload.get("errors"):
                        self.errors.append(f"subscriber {index}: {raw[:300]!r}")
                        continue
                    change = payload["data"]["recipeChanged"]
                    recipe = recipe_index.setdefault(change["recipe"]["id"], len(recipe_index))
                    add_arrival(arrived)
                    add_code((recipe << 32) | change["version"])
                elif kind == "ping":
                    self.pings += 1
                    await ws.send('{"type":"pong"}')
                elif kind != "pong":
                    self.errors.append(f"subscriber {index}: {raw[:300]!r}")
        except ConnectionClosed as closed:
            if not self.closing:
                received = closed.rcvd
                code, reason = (received.code, received.reason) if received else (None, "")
                self.closes.append((index, clock(), code, reason))
        except Exception as error:  # a malformed message: record it, stop this client
            self.errors.append(f"subscriber {index}: {type(error).__name__}: {error}")

    def status(self) -> dict[str, Any]:
        return {
            "receipts": sum(len(r.codes) for r in self.receivers),
            "closes": len(self.closes),
            "errors": len(self.errors),
            "pings": self.pings,
            "rss_kb": process_rss_kb(os.getpid()),
        }

    async def drain(self, expected: int, quiet: float, cap: float) -> float:
        started = time.monotonic()
        last_total, last_progress = -1, started
        while True:
            if all(len(r.codes) >= expected for r in self.receivers):
                await asyncio.sleep(GRACE_SECONDS)
                break
            now = time.monotonic()
            total = sum(len(r.codes) for r in self.receivers)
            if total != last_total:
                last_total, last_progress = total, now
            elif now - last_progress > quiet or now - started > cap:
                break
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def results(self) -> dict[str, Any]:
        ids = sorted(self.recipe_index, key=self.recipe_index.__getitem__)
        return {
            "ids": ids,
            "arrivals": [r.arrivals.tobytes() for r in self.receivers],
            "codes": [r.codes.tobytes() for r in self.receivers],
            "closes": list(self.closes),
            "errors": list(self.errors),
            "pings": self.pings,
        }

    async def close(self) -> float:
        started = time.monotonic()
        self.closing = True
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY * 4)

        async def one(ws: Any) -> None:
            async with limit:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 15)

        await asyncio.gather(*(one(r.ws) for r in self.receivers))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.receivers.clear()
        self.tasks.clear()
        return time.monotonic() - started


async def _serve_commands(pipe: Connection) -> None:
    pool = ClientPool()
    while True:
        sequence, *command = await asyncio.to_thread(pipe.recv)
        try:
            match command:
                case ["open", spec]:
                    pipe.send((sequence, "ok", await pool.open(spec)))
                case ["status"]:
                    pipe.send((sequence, "ok", pool.status()))
                case ["drain", expected, quiet, cap]:
                    pipe.send((sequence, "ok", await pool.drain(expected, quiet, cap)))
                case ["results"]:
                    pipe.send((sequence, "ok", pool.results()))
                case ["close"]:
                    pipe.send((sequence, "ok", await pool.close()))
                case ["exit"]:
                    await pool.close()
                    pipe.send((sequence, "ok", None))
                    return
                case _:
                    pipe.send((sequence, "error", f"unknown command {command!r}"))
        except Exception as error:
            pipe.send((sequence, "error", f"{type(error).__name__}: {error}"))


def subscriber_process_main(pipe: Connection) -> None:
    """The subscriber process's entry point (uvloop when available, like the server)."""
    try:
        import uvloop

        uvloop.run(_serve_commands(pipe))
    except ImportError:
        asyncio.run(_serve_commands(pipe))


@dataclass
class Receipts:
    """What the subscriber process recorded: per subscriber, arrival times and codes
    (`recipe << 32 | version`, recipe indexing `ids`)."""

    ids: list[str]
    arrivals: list[array[float]]
    codes: list[array[int]]
    closes: list[tuple[int, float, int | None, str]]
    errors: list[str]
    pings: int

    @classmethod
    def from_builtin(cls, raw: dict[str, Any]) -> Receipts:
        arrivals: list[array[float]] = []
        codes: list[array[int]] = []
        for times, keys in zip(raw["arrivals"], raw["codes"], strict=True):
            arrivals.append(array("d"))
            arrivals[-1].frombytes(times)
            codes.append(array("q"))
            codes[-1].frombytes(keys)
        return cls(raw["ids"], arrivals, codes, raw["closes"], raw["errors"], raw["pings"])


class Subscribers:
    """The parent's handle on the subscriber process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=subscriber_process_main, args=(child,), name="soak-subscribers", daemon=True
        )
        self.process.start()
        child.close()
        self._lock = asyncio.Lock()
        self._sequence = 0

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def _call(self, *command: Any, patience: float = PIPE_TIMEOUT) -> Any:
        """Send a command and wait for its reply. One call at a time; a reply to a call that
        was cancelled (the progress line's status) is read and dropped by the next call."""
        async with self._lock:
            self._sequence += 1
            sequence = self._sequence
            self._pipe.send((sequence, *command))
            deadline = time.monotonic() + patience
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not await asyncio.to_thread(self._pipe.poll, left):
                    raise BenchError(f"the subscriber process did not answer {command[0]!r}")
                try:
                    answered, status, value = self._pipe.recv()
                except EOFError:
                    code = self.process.exitcode
                    raise BenchError(f"the subscriber process exited ({code})") from None
                if answered == sequence:
                    break
        if status != "ok":
            raise BenchError(f"subscriber process: {value}")
        return value

    async def open(self, url: str, tokens: list[str], count: int) -> dict[str, Any]:
        spec = {"url": url, "tokens": tokens, "count": count}
        opened: dict[str, Any] = await self._call("open", spec)
        return opened

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self._call("status", patience=30)
        return status

    async def drain(self, expected: int) -> float:
        seconds: float = await self._call(
            "drain", expected, QUIET_TIMEOUT, DRAIN_LIMIT, patience=DRAIN_LIMIT + 60
        )
        return seconds

    async def results(self) -> Receipts:
        return Receipts.from_builtin(await self._call("results"))

    async def close(self) -> float:
        seconds: float = await self._call("close")
        return seconds

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self._pipe.send((0, "exit"))
                if self._pipe.poll(30):
                    self._pipe.recv()
            self.process.join(10)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(10)
        self._pipe.close()


# ------------------------------------------------------------------------------ /metrics


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The samples of one /metrics scrape: (name, labels, value)."""

    samples: tuple[tuple[str, dict[str, str], float], ...]

    @classmethod
    def parse(cls, text: str) -> MetricsSnapshot:
        return cls(
            tuple(
                (sample.name, dict(sample.labels), float(sample.value))
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            )
        )

    def total(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
        return sum(
            value
            for sample, got, value in self.samples
            if sample == name and all(got.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str) -> bool:
        return any(sample == name for sample, _, _ in self.samples)

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """A histogram's cumulative (upper bound, count) pairs, in order."""
        found = [
            (float(labels["le"]), value)
            for sample, labels, value in self.samples
            if sample == f"{name}_bucket"
        ]
        return sorted(found)


def histogram_quantile_bound(
    before: MetricsSnapshot, after: MetricsSnapshot, name: str, q: float
) -> float | None:
    """The upper bound of the bucket holding quantile `q` of the observations between two
    scrapes (None without observations)."""
    earlier = dict(before.buckets(name))
    delta = [(le, count - earlier.get(le, 0.0)) for le, count in after.buckets(name)]
    if not delta or delta[-1][1] <= 0:
        return None
    target = q * delta[-1][1]
    return next(le for le, count in delta if count >= target)


# ------------------------------------------------------------------------------- writing


@dataclass
class WriteLog:
    """Every write: when its request was sent and answered, and what went wrong."""

    sent: dict[Key, float] = field(default_factory=dict)  # applied writes (receipts expected)
    replied: dict[Key, float] = field(default_factory=dict)
    uncertain: set[Key] = field(default_factory=set)  # failed, and whether applied is unknown
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    skipped: int = 0  # writes not made: their recipe's version was unknown after an error
    late: list[float] = field(default_factory=list)  # start - scheduled start, per write

    def record(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{kind}: {detail[:300]}")

    def round_trips(self) -> list[float]:
        return [self.replied[key] - self.sent[key] for key in self.replied if key in self.sent]


class Writer:
    """Upserts on the PUBLIC recipes, one write per recipe in flight (so none conflicts)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.recipe_ids: list[str] = []
        self.versions: dict[str, int | None] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.log = WriteLog()

    async def setup(self, recipes: int) -> None:
        for index in range(recipes):
            data = await graphql(
                self.http, UPSERT, {"input": {**recipe_input(index), "visibility": "PUBLIC"}}
            )
            recipe = data["upsertRecipe"]
            if recipe["__typename"] != "Recipe" or recipe["visibility"] != "PUBLIC":
                raise BenchError(f"creating recipe {index} failed: {recipe}")
            self.recipe_ids.append(recipe["id"])
            self.versions[recipe["id"]] = 1
            self.locks[recipe["id"]] = asyncio.Lock()

    async def write(self, index: int) -> None:
        recipe_id = self.recipe_ids[index % len(self.recipe_ids)]
        async with self.locks[recipe_id]:
            expected = self.versions[recipe_id]
            if expected is None:
                self.log.skipped += 1
                return
            key = (recipe_id, expected + 1)
            variables = {
                "input": {
                    "id": recipe_id,
                    "expectedVersion": expected,
                    "title": recipe_title(index % len(self.recipe_ids), expected + 1),
                }
            }
            sent = time.monotonic()
            problem = await self._post(variables, expected)
            if problem is None:
                self.log.sent[key] = sent
                self.log.replied[key] = time.monotonic()
                self.versions[recipe_id] = expected + 1
                return
            self.log.record(*problem)
            await self._resync(recipe_id, key, sent)

    async def _post(self, variables: dict[str, Any], expected: int) -> tuple[str, str] | None:
        """None when the write applied as version expected + 1, else (kind, detail)."""
        try:
            response = await self.http.post(
                "/graphql", json={"query": TOUCH, "variables": variables}
            )
        except httpx.HTTPError as error:
            return f"HTTP {type(error).__name__}", str(error)
        if response.status_code != 200:
            return f"HTTP {response.status_code}", response.text
        try:
            body = response.json()
        except ValueError:
            return "HTTP invalid JSON", response.text
        if body.get("errors"):
            first = body["errors"][0]
            code = (first.get("extensions") or {}).get("code", "no code")
            return f"GraphQL {code}", json.dumps(body["errors"])
        result = (body.get("data") or {}).get("upsertRecipe") or {}
        if result.get("__typename") != "Recipe" or result.get("version") != expected + 1:
            return f"GraphQL unexpected {result.get('__typename')}", json.dumps(result)
        return None

    async def _resync(self, recipe_id: str, key: Key, sent: float) -> None:
        """After a failed write: read the recipe's version to know whether the write applied
        (then its receipts are expected) and to carry on from the stored version."""
        try:
            data = await graphql(self.http, VERSION_OF, {"id": recipe_id})
            version: int = data["recipe"]["version"]
        except (BenchError, httpx.HTTPError, KeyError, TypeError) as error:
            self.log.record("resync failed", f"{recipe_id}: {error}")
            self.log.uncertain.add(key)
            self.versions[recipe_id] = None  # stop writing it: its version is unknown
            return
        if version == key[1]:
            self.log.sent[key] = sent  # it applied after all
        elif version > key[1]:
            self.log.uncertain.add(key)
        self.versions[recipe_id] = version


async def paced_writes(writer: Writer, count: int, rate: float, start: float) -> None:
    """Open loop: start write i at `start` + i/rate whether or not earlier ones finished."""
    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        scheduled = start + index / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.log.late.append(time.monotonic() - scheduled)
        tasks.append(asyncio.create_task(writer.write(index)))
    await asyncio.gather(*tasks)


# ---------------------------------------------------------------------------- sampling


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic
    server_rss_kb: int
    cpu: dict[str, float]


@dataclass
class Sampler:
    """The server's VmRSS and every process's CPU seconds, once a second."""

    server_pid: int
    cpu: CpuMeter
    samples: list[Sample] = field(default_factory=list)

    def take(self) -> Sample:
        sample = Sample(time.monotonic(), process_rss_kb(self.server_pid), self.cpu.sample())
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, BenchError):
                self.take()
            await asyncio.sleep(SAMPLE_INTERVAL)

    def at(self, moment: float) -> Sample:
        """The last sample taken at or before `moment` (else the first)."""
        earlier = [s for s in self.samples if s.at <= moment]
        return earlier[-1] if earlier else self.samples[0]


# ----------------------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything measured, for the report."""

    options: Options
    database: Database
    server_pid: int = 0
    subscriber_pid: int = 0
    opened: int = 0
    connect_failures: list[str] = field(default_factory=list)
    connect_seconds: float = 0.0
    start: float = 0.0  # monotonic: first scheduled write
    write_end: float = 0.0  # every write answered
    drain_seconds: float = 0.0
    rss_kb: dict[str, int] = field(default_factory=dict)
    client_rss_kb: int = 0
    log: WriteLog = field(default_factory=WriteLog)
    receipts: Receipts | None = None
    samples: list[Sample] = field(default_factory=list)
    metrics_before: MetricsSnapshot | None = None
    metrics_after: MetricsSnapshot | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # during the write phase + drain
    server_cpu_total: float = 0.0
    server_exit: int | None = None
    nofile: str = ""
    close_seconds: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)


def server_settings(options: Options) -> dict[str, str]:
    """The limits raised for the soak (the per-user defaults would refuse its load)."""
    per_user = math.ceil(options.subscribers / options.users)
    return {
        "WS_MAX_CONNECTIONS_PER_USER": str(max(20, per_user)),
        "RATE_LIMIT_WS_CONNECTS_PER_SECOND": str(float(max(20, per_user))),
        "RATE_LIMIT_WS_CONNECTS_BURST": str(max(20, per_user)),
        "RATE_LIMIT_MUTATIONS_PER_SECOND": str(max(100.0, options.rate * 4)),
        "RATE_LIMIT_MUTATIONS_BURST": str(max(1000, options.recipes * 2)),
        "WS_KEEPALIVE_SECONDS": f"{options.keepalive:g}",
        "LOG_LEVEL": "WARNING",
    }


def effective_ws_settings(raised: dict[str, str]) -> str:
    """The server's WS_* settings: the raised ones, else the app's defaults."""
    from app.settings import Settings

    values = {
        name.upper(): raised.get(name.upper(), repr(info.default))
        for name, info in Settings.model_fields.items()
        if name.startswith("ws_")
    }
    return ", ".join(f"{name}={value}" for name, value in sorted(values.items()))


def check_loopback(database: Database) -> None:
    if database.pid is not None:
        return  # the embedded daemon listens on 127.0.0.1
    if database.uri.startswith("mongodb+srv://"):
        raise BenchError("the soak runs on loopback only: MONGODB_URI must not be mongodb+srv")
    hosts = {host for host, _ in parse_uri(database.uri)["nodelist"]}
    if not hosts <= LOOPBACK:
        raise BenchError(f"the soak runs on loopback only: MONGODB_URI names {sorted(hosts)}")


async def scrape(http: httpx.AsyncClient) -> MetricsSnapshot:
    response = await http.get("/metrics")
    if response.status_code != 200:
        raise BenchError(f"/metrics answered {response.status_code}")
    return MetricsSnapshot.parse(response.text)


async def wait_registered(http: httpx.AsyncClient, server: ServerProcess, count: int) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT
    while (current := (await scrape(http)).total("larder_subscriptions")) != count:
        if time.monotonic() > deadline:
            raise BenchError(f"{current:.0f} subscriptions registered, not {count}")
        if server.process.poll() is not None:
            raise BenchError(f"the server exited:\n{server.log_tail()}")
        await asyncio.sleep(0.1)


async def wait_change_events(http: httpx.AsyncClient, at_least: float) -> None:
    deadline = time.monotonic() + 60
    while (await scrape(http)).total("larder_change_events_total") < at_least:
        if time.monotonic() > deadline:
            raise BenchError("the change feed did not publish the setup writes")
        await asyncio.sleep(0.1)


async def progress(run: Run, subscribers: Subscribers, sampler: Sampler) -> None:
    """A line on stderr every window: writes, receipts, closes, server RSS."""
    options = run.options
    while True:
        await asyncio.sleep(options.window)
        status = await subscribers.status()
        sample = sampler.samples[-1] if sampler.samples else None
        rss = f"{sample.server_rss_kb / 1024:.1f} MB" if sample else "?"
        written = len(run.log.sent)
        print(
            f"  t={time.monotonic() - run.start:5.0f} s: {written} writes applied, "
            f"{status['receipts']:,} receipts (of {written * run.opened:,}), "
            f"{status['closes']} closes, {sum(run.log.errors.values())} write errors, "
            f"server RSS {rss}",
            file=sys.stderr,
        )


async def open_subscribers(
    run: Run,
    http: httpx.AsyncClient,
    server: ServerProcess,
    keys: BenchKeys,
    subscribers: Subscribers,
) -> None:
    options = run.options
    print(f"opening {options.subscribers} subscribers", file=sys.stderr)
    ws_url = server.url.replace("http://", "ws://") + "/graphql"
    tokens = [f"Bearer {keys.token(f'bench-reader-{i}')}" for i in range(options.users)]
    opened = await subscribers.open(ws_url, tokens, options.subscribers)
    run.opened = opened["opened"]
    run.connect_failures = opened["failures"]
    run.connect_seconds = opened["seconds"]
    if run.opened == 0:
        raise BenchError(f"no subscriber connected: {run.connect_failures[:3]}")
    await wait_registered(http, server, run.opened)
    await asyncio.sleep(SETTLE_SECONDS)
    run.rss_kb["connected"] = process_rss_kb(server.pid)


async def write_phase(
    run: Run, http: httpx.AsyncClient, writer: Writer, sampler: Sampler, subscribers: Subscribers
) -> None:
    """The steady writes, then the drain; RSS and CPU sampled throughout."""
    options = run.options
    run.metrics_before = await scrape(http)
    print(
        f"writing {options.writes} upserts at {options.rate:g}/s for "
        f"{options.seconds:.0f} s ({run.opened} subscribers)",
        file=sys.stderr,
    )
    before = sampler.take()
    run.start = time.monotonic() + 0.05
    sampling = asyncio.create_task(sampler.run())
    reporting = asyncio.create_task(progress(run, subscribers, sampler))
    try:
        await paced_writes(writer, options.writes, options.rate, run.start)
        run.write_end = time.monotonic()
        reporting.cancel()
        print("draining", file=sys.stderr)
        run.drain_seconds = await subscribers.drain(len(writer.log.sent))
    finally:
        for task in (sampling, reporting):
            task.cancel()
        await asyncio.gather(sampling, reporting, return_exceptions=True)
    after = sampler.take()
    run.cpu = CpuMeter.delta(before.cpu, after.cpu)
    run.samples = sampler.samples
    run.rss_kb["after warm-up"] = sampler.at(run.start + options.warmup).server_rss_kb
    run.rss_kb["end"] = after.server_rss_kb
    run.metrics_after = await scrape(http)


async def soak(run: Run, server: ServerProcess, keys: BenchKeys, subscribers: Subscribers) -> None:
    options = run.options
    headers = {"Authorization": f"Bearer {keys.token(WRITER)}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=WRITE_TIMEOUT, limits=limits
    ) as http:
        await asyncio.sleep(SETTLE_SECONDS)
        run.rss_kb["start"] = process_rss_kb(server.pid)

        print(f"creating {options.recipes} PUBLIC recipes", file=sys.stderr)
        writer = Writer(http)
        run.log = writer.log
        events_before = (await scrape(http)).total("larder_change_events_total")
        await writer.setup(options.recipes)
        await wait_change_events(http, events_before + options.recipes)

        await open_subscribers(run, http, server, keys, subscribers)

        pids = {"server": server.pid, "clients": subscribers.pid, "writer": os.getpid()}
        if run.database.pid is not None:
            pids["database"] = run.database.pid
        await write_phase(run, http, writer, Sampler(server.pid, CpuMeter(pids)), subscribers)
        run.client_rss_kb = (await subscribers.status())["rss_kb"]
        run.receipts = await subscribers.results()

        print("closing the subscribers", file=sys.stderr)
        run.close_seconds = await subscribers.close()
        await wait_registered(http, server, 0)
        await asyncio.sleep(SETTLE_SECONDS)
        run.rss_kb["subscribers closed"] = process_rss_kb(server.pid)
        run.server_cpu_total = process_cpu_seconds(server.pid)


async def drop_database(mongodb_uri: str) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, serverSelectionTimeoutMS=10_000
    )
    try:
        await mongo.drop_database(DB_NAME)
    finally:
        await mongo.close()


def run_soak(options: Options, database: Database, workdir: Path, run: Run) -> None:
    keys = make_bench_keys(workdir / "keys")
    run.settings = server_settings(options)
    env = server_environment(
        database.uri, DB_NAME, keys.public_path, workdir / "data", **run.settings
    )
    subscribers = Subscribers()
    run.subscriber_pid = subscribers.pid
    try:
        server = start_server(env, workdir / "server", host=HOST)
        run.server_pid = server.pid
        try:
            limit = options.seconds + SETUP_BUDGET
            asyncio.run(asyncio.wait_for(soak(run, server, keys, subscribers), limit))
        except TimeoutError:
            print(server.log_tail(30), file=sys.stderr)
            raise BenchError(f"the run took longer than {limit:.0f} s: stopped") from None
        except BenchError:
            print(server.log_tail(30), file=sys.stderr)
            raise
        finally:
            run.server_exit = server.stop()
    finally:
        subscribers.stop()


# ---------------------------------------------------------------------------- analysing


@dataclass
class Window:
    """Receipts of the writes sent in [start, end) seconds of the write phase."""

    start: float
    end: float
    writes: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class Analysis:
    """Receipts matched against the writes (codes: `recipe << 32 | version`)."""

    sent: dict[int, float]  # applied writes: code -> request sent (monotonic)
    replied: dict[int, float]  # code -> its HTTP reply received
    uncertain: set[int]  # failed writes of unknown outcome
    ids: list[str]
    start: float
    warm_end: float
    windows: list[Window]
    window_seconds: float
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    unexpected: int = 0
    out_of_order: int = 0
    subscribers_missing: int = 0
    uncertain_receipts: int = 0
    lost_samples: list[str] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    steady: array[float] = field(default_factory=lambda: array("d"))  # sent after warm-up
    # After warm-up: arrival - the write's HTTP reply (the delivery path alone; < 0 when the
    # event arrived before the reply)
    after_reply: array[float] = field(default_factory=lambda: array("d"))

    @property
    def matched(self) -> int:
        return len(self.latencies)

    @staticmethod
    def ms(values: Sequence[float], pct: float) -> float | None:
        return percentile(values, pct) * 1000 if values else None

    def window_of(self, sent: float) -> Window:
        slot = int((sent - self.start) / self.window_seconds)
        return self.windows[min(len(self.windows) - 1, max(0, slot))]

    def subscriber(self, number: int, arrivals: array[float], codes: array[int]) -> None:
        """Match one subscriber's receipts: latency of each first receipt, duplicates,
        unexpected ones, versions of a recipe going backwards, and what never arrived."""
        sent, seen = self.sent, set[int]()
        last_version: dict[int, int] = {}
        self.received += len(codes)
        for arrived, code in zip(arrivals, codes, strict=True):
            recipe, version = code >> 32, code & 0xFFFFFFFF
            if version < last_version.get(recipe, 0):
                self.out_of_order += 1
            last_version[recipe] = version
            started = sent.get(code)
            if started is None:
                if code in self.uncertain:
                    self.uncertain_receipts += 1
                else:
                    self.unexpected += 1
            elif code in seen:
                self.duplicates += 1
            else:
                seen.add(code)
                latency = arrived - started
                self.latencies.append(latency)
                if started >= self.warm_end:
                    self.steady.append(latency)
                    answered = self.replied.get(code)
                    if answered is not None:
                        self.after_reply.append(arrived - answered)
                self.window_of(started).latencies.append(latency)
        missed = len(sent) - len(seen)
        if missed:
            self.lost += missed
            self.subscribers_missing += 1
            if len(self.lost_samples) < 5:
                absent = [self.describe(c) for c in sent if c not in seen][:3]
                self.lost_samples.append(f"subscriber {number}: {missed} missing, e.g. {absent}")

    def describe(self, code: int) -> str:
        return f"{self.ids[code >> 32][:8]}.. v{code & 0xFFFFFFFF}"


def analyse(run: Run) -> Analysis:
    options, log, receipts = run.options, run.log, run.receipts
    assert receipts is not None
    # Applied writes of a recipe no subscriber ever heard of are lost by everyone.
    heard = set(receipts.ids)
    ids = [*receipts.ids, *sorted({recipe_id for recipe_id, _ in log.sent} - heard)]
    index = {recipe_id: i for i, recipe_id in enumerate(ids)}
    count = max(1, math.ceil(options.seconds / options.window))
    analysis = Analysis(
        sent={(index[key[0]] << 32) | key[1]: at for key, at in log.sent.items()},
        replied={(index[key[0]] << 32) | key[1]: at for key, at in log.replied.items()},
        uncertain={(index[k[0]] << 32) | k[1] for k in log.uncertain if k[0] in index},
        ids=ids,
        start=run.start,
        warm_end=run.start + options.warmup,
        windows=[Window(i * options.window, (i + 1) * options.window) for i in range(count)],
        window_seconds=options.window,
        expected=options.subscribers * len(log.sent),
    )
    for at in analysis.sent.values():
        analysis.window_of(at).writes += 1
    for number, (arrivals, codes) in enumerate(zip(receipts.arrivals, receipts.codes, strict=True)):
        analysis.subscriber(number, arrivals, codes)
    # Subscribers that never connected miss everything.
    never_opened = options.subscribers - run.opened
    analysis.lost += never_opened * len(log.sent)
    analysis.subscribers_missing += never_opened
    return analysis


def error_counts(run: Run) -> dict[str, int]:
    """Every kind of error, counted (zero rows included, for the table)."""
    receipts = run.receipts
    assert receipts is not None
    http = sum(n for kind, n in run.log.errors.items() if kind.startswith("HTTP"))
    graphql_errors = sum(n for kind, n in run.log.errors.items() if kind.startswith("GraphQL"))
    other = sum(run.log.errors.values()) - http - graphql_errors
    return {
        "HTTP errors (status != 200, transport, timeouts)": http,
        "GraphQL errors on writes": graphql_errors,
        "other write errors (resync)": other,
        "writes skipped (version unknown)": run.log.skipped,
        "WebSocket connects failed": len(run.connect_failures),
        "WebSocket closes by the server": len(receipts.closes),
        "error / unexpected messages to subscribers": len(receipts.errors),
    }


# -------------------------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.1f}"


def _ok(good: bool) -> str:
    return "ok" if good else "FAIL"


def memory_growth(run: Run) -> tuple[bool, str]:
    warm, end = run.rss_kb["after warm-up"], run.rss_kb["end"]
    grown_mb = (end - warm) / 1024
    threshold = max(GROWTH_MB, warm / 1024 * GROWTH_FRACTION)
    steady = [s for s in run.samples if s.at >= run.start + run.options.warmup]
    slope = ""
    if len(steady) >= 3:
        t0 = steady[0].at
        xs = [(s.at - t0) / 60 for s in steady]
        ys = [s.server_rss_kb / 1024 for s in steady]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mean_x) ** 2 for x in xs)
        if var > 0:
            beta = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
            slope = f"; least-squares slope after warm-up {beta:+.2f} MB/min"
    grew = grown_mb > threshold
    text = (
        f"{'grew' if grew else 'no growth'}: {grown_mb:+.1f} MB from after warm-up to end "
        f"(threshold {threshold:.1f} MB){slope}"
    )
    return grew, text


def report(run: Run, analysis: Analysis, machine: dict[str, str]) -> tuple[str, bool]:
    """The markdown report, and whether the run passed."""
    options = run.options
    receipts = run.receipts
    assert receipts is not None
    before, after = run.metrics_before, run.metrics_after
    assert before is not None and after is not None
    errors = error_counts(run)
    total_errors = sum(errors.values())
    failed = analysis.lost > 0 or total_errors > 0 or analysis.duplicates > 0
    grew, growth_text = memory_growth(run)
    applied = len(run.log.sent)
    phase = max(1e-9, run.write_end - run.start)
    measured = max(1e-9, (run.samples[-1].at - run.samples[0].at) if run.samples else phase)
    delivered = after.total("larder_events_delivered_total") - before.total(
        "larder_events_delivered_total"
    )
    dropped = after.total("larder_events_dropped_total")
    lag_count = after.total("larder_change_feed_lag_seconds_count") - before.total(
        "larder_change_feed_lag_seconds_count"
    )
    lag_sum = after.total("larder_change_feed_lag_seconds_sum") - before.total(
        "larder_change_feed_lag_seconds_sum"
    )
    lag_p99 = histogram_quantile_bound(before, after, "larder_change_feed_lag_seconds", 0.99)
    round_trips = run.log.round_trips()
    late = sorted(run.log.late)
    late_p50 = _ms(percentile(late, 50) * 1000 if late else None)

    error_rows: list[list[object]] = [
        [kind, str(n), "0", _ok(n == 0)] for kind, n in errors.items()
    ]
    summary: list[list[object]] = [
        ["subscribers connected", f"{run.opened} of {options.subscribers}", "all", ""],
        [
            "writes applied",
            f"{applied} of {options.writes} in {phase:.1f} s ({applied / phase:.1f}/s)",
            f"{options.rate:g}/s",
            "",
        ],
        ["receipts expected", f"{analysis.expected:,}", "", ""],
        ["receipts", f"{analysis.received:,}", "", ""],
        [
            "events lost",
            f"{analysis.lost:,} ({analysis.subscribers_missing} subscribers missed some)",
            "0",
            _ok(analysis.lost == 0),
        ],
        ["duplicates", f"{analysis.duplicates:,}", "0", _ok(analysis.duplicates == 0)],
        ["unexpected receipts", f"{analysis.unexpected:,}", "0", ""],
        ["out of version order (per recipe)", f"{analysis.out_of_order:,}", "0", ""],
        *error_rows,
        [
            "write->receipt p50 / p99 / max ms (after warm-up)",
            f"{_ms(Analysis.ms(analysis.steady, 50))} / {_ms(Analysis.ms(analysis.steady, 99))}"
            f" / {_ms(max(analysis.steady) * 1000 if analysis.steady else None)}",
            "",
            "",
        ],
        [
            "write->receipt p50 / p99 / max ms (whole run)",
            f"{_ms(Analysis.ms(analysis.latencies, 50))} / "
            f"{_ms(Analysis.ms(analysis.latencies, 99))} / "
            f"{_ms(max(analysis.latencies) * 1000 if analysis.latencies else None)}",
            "",
            "",
        ],
        [
            "receipt after the write's HTTP reply p50 / p99 ms (after warm-up)",
            f"{_ms(Analysis.ms(analysis.after_reply, 50))} / "
            f"{_ms(Analysis.ms(analysis.after_reply, 99))}",
            "",
            "",
        ],
        [
            "write HTTP round trip p50 / p99 ms",
            f"{_ms(Analysis.ms(round_trips, 50))} / {_ms(Analysis.ms(round_trips, 99))}",
            "",
            "",
        ],
        [
            "server RSS MB: start / connected / after warm-up / end",
            " / ".join(_mb(run.rss_kb[k]) for k in ("start", "connected", "after warm-up", "end")),
            "no growth",
            "grew" if grew else "ok",
        ],
        [
            "server RSS MB after closing the subscribers",
            _mb(run.rss_kb["subscribers closed"]),
            "",
            "",
        ],
        [
            "server CPU s: write phase + drain / lifetime",
            f"{run.cpu.get('server', 0.0):.1f} ({run.cpu.get('server', 0.0) / measured:.2f} "
            f"CPUs) / {run.server_cpu_total:.1f}",
            "",
            "",
        ],
        [
            "/metrics events delivered (during the run)",
            f"{delivered:,.0f} (subscribers counted {analysis.matched:,})",
            f"{analysis.expected:,}",
            "",
        ],
        ["/metrics events dropped (subscriptions overflowed)", f"{dropped:,.0f}", "0", ""],
        [
            "/metrics change-feed lag: count / sum s / mean ms / p99 bucket",
            f"{lag_count:,.0f} / {lag_sum:.2f} / "
            f"{lag_sum / lag_count * 1000 if lag_count else 0:.1f} / "
            f"<= {_ms(lag_p99 * 1000 if lag_p99 is not None else None)} ms",
            f"{applied} events",
            "",
        ],
        [
            "/metrics larder_ready / subscriptions (at the end)",
            f"{after.total('larder_ready'):.0f} / {after.total('larder_subscriptions'):.0f}",
            f"1 / {run.opened}",
            "",
        ],
    ]

    window_rows: list[list[object]] = []
    previous = run.samples[0] if run.samples else None
    for window in analysis.windows:
        end_sample = next(
            (s for s in run.samples if s.at >= run.start + window.end), run.samples[-1]
        )
        busy: dict[str, float] = {}
        if previous is not None and end_sample.at > previous.at:
            span = end_sample.at - previous.at
            busy = {k: v / span for k, v in CpuMeter.delta(previous.cpu, end_sample.cpu).items()}
        previous = end_sample
        lat = window.latencies
        window_rows.append(
            [
                f"{window.start:.0f}-{window.end:.0f} s",
                window.writes,
                len(lat),
                Analysis.ms(lat, 50),
                Analysis.ms(lat, 99),
                max(lat) * 1000 if lat else None,
                end_sample.server_rss_kb / 1024,
                busy.get("server"),
                busy.get("clients"),
                busy.get("database"),
            ]
        )

    cpu_rows: list[list[object]] = [
        [
            name,
            spent,
            spent / measured,
            spent / applied * 1000 if applied else None,
            spent / analysis.matched * 1e6 if analysis.matched else None,
        ]
        for name, spent in sorted(run.cpu.items())
    ]

    lines = [
        "## Larder soak benchmark",
        "",
        *environment_lines(
            ("strawberry-graphql", "starlette", "uvicorn", "uvloop", "websockets", "pymongo")
        ),
        f"- database: {run.database.description}",
        f"- workload: {options.subscribers} WebSocket subscribers (graphql-transport-ws, "
        f"`{SUBSCRIPTION}`) over {options.users} reader users; {options.writes} writes at "
        f"{options.rate:g}/s (open loop) for {options.seconds:.0f} s, `upsertRecipe(input: "
        f"{{id, expectedVersion, title}})` over HTTP/1.1 keep-alive, round-robin over "
        f"{options.recipes} PUBLIC recipes of the writer user; every subscriber must receive "
        f"every write; the first {options.warmup:.0f} s are the warm-up",
        "- server: one `python -m app serve` process, APP_ENV=production, generated RSA key; "
        "raised: " + ", ".join(f"{k}={v}" for k, v in run.settings.items()) + "; "
        f"WebSocket settings in effect: {effective_ws_settings(run.settings)}",
        "- processes: the subscribers live in one separate process (multiprocessing spawn, "
        "uvloop; one task per connection doing recv + json.loads + append, answering pings); "
        "this process only writes and timestamps. With "
        f"{options.subscribers * options.rate:,.0f} receipts/s arriving, receiving them in the "
        "writer's event loop would delay its send timestamps and its pacing behind the "
        "receipt backlog and blur the latency; the price is one more busy process on "
        f"{os.cpu_count()} CPUs shared with the database and the server (its CPU is shown "
        "below, and latency includes its queueing). Latency = arrival (after recv) - the "
        "write's HTTP request sent, both `time.monotonic()` (CLOCK_MONOTONIC is system-wide)",
        f"- subscribers opened in {run.connect_seconds:.1f} s; drained in "
        f"{run.drain_seconds:.1f} s after the last write; closed in {run.close_seconds:.1f} s; "
        f"{receipts.pings} keep-alive pings answered; open files {run.nofile}",
        f"- writer pacing: a write started after its scheduled time by p50 {late_p50} ms, "
        f"max {_ms(late[-1] * 1000 if late else None)} ms",
        "",
        markdown_table(["measure", "value", "expected", "check"], summary),
        "",
        f"Memory: {growth_text}.",
        "",
        "Over time (by the write's send time; RSS at the window's end; CPUs busy = CPU "
        "seconds / wall seconds of the window):",
        "",
        markdown_table(
            [
                "window",
                "writes",
                "receipts",
                "p50 ms",
                "p99 ms",
                "max ms",
                "server RSS MB",
                "server CPUs",
                "clients CPUs",
                "database CPUs",
            ],
            window_rows,
        ),
        "",
        "CPU during the write phase and the drain (user+sys from /proc/<pid>/stat; clients = "
        "the subscriber process, writer = this process):",
        "",
        markdown_table(
            ["process", "CPU s", "CPUs busy", "ms per write", "µs per receipt"], cpu_rows
        ),
        "",
        f"- client process RSS at the end: {_mb(run.client_rss_kb)} MB",
        f"- load average before: {machine['load_before']}",
        f"- load average after:  {machine['load_after']}",
        f"- server process (pid {run.server_pid}): exit code {run.server_exit}",
    ]
    if "database_cpu" in machine:
        lines.append(
            f"- database daemon (pid {run.database.pid}): {machine['database_cpu']} s CPU over "
            "its lifetime"
        )
    details = [
        *(f"write error: {s}" for s in run.log.error_samples),
        *(f"connect failure: {s}" for s in run.connect_failures[:3]),
        *(
            f"close: subscriber {i} at t={at - run.start:.1f} s, code {code} {reason!r}"
            for i, at, code, reason in receipts.closes[:5]
        ),
        *(f"message: {s}" for s in receipts.errors[:3]),
        *(f"lost: {s}" for s in analysis.lost_samples),
    ]
    if run.log.uncertain:
        details.append(
            f"{len(run.log.uncertain)} failed writes of unknown outcome "
            f"({analysis.uncertain_receipts} receipts of them, not counted)"
        )
    lines += [f"- {d}" for d in details]
    verdict = (
        "FAILED: events lost, duplicated or errors occurred"
        if failed
        else "PASSED: no event lost or duplicated, no error"
    )
    lines += ["", f"**{verdict}**"]
    return "\n".join(lines), not failed


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    machine = {"load_before": read_loadavg()}
    started = time.monotonic()
    try:
        nofile = raise_open_file_limit(options.subscribers * 2 + 1024)
        with (
            open_database() as database,
            tempfile.TemporaryDirectory(prefix="larder-soak-") as tmp,
        ):
            check_loopback(database)
            run = Run(options=options, database=database, nofile=nofile)
            asyncio.run(drop_database(database.uri))
            try:
                run_soak(options, database, Path(tmp), run)
                if database.pid is not None:
                    machine["database_cpu"] = f"{process_cpu_seconds(database.pid):.2f}"
            finally:
                asyncio.run(drop_database(database.uri))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    machine["load_after"] = read_loadavg()
    text, passed = report(run, analyse(run), machine)
    print(text)
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
