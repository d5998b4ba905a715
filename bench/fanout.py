"""Fan-out benchmark: one change delivered to N WebSocket subscribers, Larder vs. a bare broadcast.

One run starts a database (MONGODB_URI, else an embedded in-memory SecantusDB daemon), one
production-mode `python -m app serve` process and, as the baseline, a tiny Starlette app under
uvicorn (same uvicorn settings as the server) whose plain WebSocket endpoint sends the same JSON
text to every connected client when it receives an HTTP POST. For each system it measures:

- latency and throughput: N subscribers (one WebSocket each; on Larder graphql-transport-ws,
  `subscription { recipeChanged { kind version recipe { id title version updatedAt } } }`, as
  several users who may all read the PUBLIC recipes written) receive every one of M writes
  made at a steady rate (Larder: `upsertRecipe` over HTTP; baseline: `POST /publish`). A
  receipt's latency is its arrival time minus the time the write's HTTP request was sent,
  matched on (recipe id, version); nothing is embedded in the recipe.
- memory: the server's VmRSS with no subscriber, then with 1,000 (and 10,000) idle ones, one
  WebSocket per subscription; for Larder also with K subscriptions multiplexed on each
  WebSocket (graphql-transport-ws `subscribe` messages with different ids on one socket).
- saturation (`--saturation`): N=1,000 subscribers while the write rate is ramped open loop
  (10, 20, 40, 80 writes/s, 10 s each, stopping after the first step that is not bounded); the
  saturation figure is the highest delivered/s of a step with p99 < 1 s and nothing missing.

The subscribers live in a separate process (multiprocessing, spawn) from the writer, so the
writer's timestamps are not delayed by thousands of receipts queued on its own event loop; both
use CLOCK_MONOTONIC (`time.monotonic()`), which is system-wide on Linux.

    python bench/fanout.py [--subscribers 1,100,1000] [--mutations 200] [--rate 10]
                           [--idle 1000,10000] [--subs-per-connection 10]
                           [--saturation | --no-saturation] [--saturation-subscribers 1000]
                           [--saturation-rates 10,20,40,80] [--saturation-seconds 10] [--quick]

The bench_fanout database is dropped before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as `python bench/fanout.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pymongo import AsyncMongoClient

from bench.common import (
    UPSERT,
    BenchError,
    BenchKeys,
    CpuMeter,
    Database,
    ServerProcess,
    environment_lines,
    free_port,
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
    wait_until_ready,
    write_summary,
)

DB_NAME = "bench_fanout"
WRITER = "bench-writer"
LARDER = "Larder"
BASELINE = "baseline"

DEFAULT_SUBSCRIBERS = (1, 100, 1000)
DEFAULT_IDLE = (1000, 10000)
DEFAULT_MUTATIONS = 200
DEFAULT_RATE = 10.0
QUICK_SUBSCRIBERS = (1, 100)
QUICK_IDLE = (1000,)
QUICK_MUTATIONS = 50
WARMUP_WRITES = 5
CONNECT_CONCURRENCY = 100  # WebSocket handshakes in flight at once while opening
QUIET_TIMEOUT = 20.0  # give up waiting for receipts after this long without a new one
METRICS_POLL = 0.1
REGISTER_TIMEOUT = 600.0  # for the server to count every subscriber as registered
SETTLE_SECONDS = 1.0  # after the last subscriber registers, before reading RSS
DEFAULT_SUBS_PER_CONNECTION = 10
DEFAULT_SATURATION_SUBSCRIBERS = 1000
DEFAULT_SATURATION_RATES = (10, 20, 40, 80)
DEFAULT_SATURATION_SECONDS = 10.0
SATURATION_P99_BOUND = 1.0  # seconds: a step whose p99 exceeds this is past saturation
SATURATION_DRAIN = 15.0  # after a step's last write, wait at most this long for its receipts
SATURATION_QUIET = 5.0
TARGET_EVENTS_PER_SECOND = 12_000
TARGET_KB_PER_SUBSCRIPTION = 15.0

SUBSCRIPTION = (
    "subscription { recipeChanged { kind version recipe { id title version updatedAt } } }"
)
# What the writer asks back: just enough to check the write applied.
TOUCH = """
mutation Touch($input: RecipeInput!) {
  upsertRecipe(input: $input) {
    __typename
    ... on Recipe { id version }
    ... on VersionConflict { currentVersion }
  }
}
"""
WS_SUBPROTOCOL = "graphql-transport-ws"

# The server's settings for the run (besides the connection limit and queue, set per run):
# limits meant for hostile clients are raised so that thousands of connections from one
# benchmark, and writes delayed by an overloaded event loop, are measured rather than refused.
# (Unknown names are ignored by the server's settings.)
SERVER_SETTINGS = {
    "LOG_LEVEL": "WARNING",
    "WS_KEEPALIVE_SECONDS": "300",
    "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": "50",
    "RATE_LIMIT_WS_CONNECTS_PER_SECOND": "1000000",
    "RATE_LIMIT_WS_CONNECTS_BURST": "1000000",
    "RATE_LIMIT_MUTATIONS_PER_SECOND": "1000000",
    "RATE_LIMIT_MUTATIONS_BURST": "1000000",
    "OPERATION_TIMEOUT_SECONDS": "600",
    "MONGODB_TIMEOUT_SECONDS": "60",
}


# ------------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Options:
    subscribers: tuple[int, ...]
    idle: tuple[int, ...]
    mutations: int
    rate: float
    recipes: int
    users: int
    compression: bool
    subs_per_connection: int = DEFAULT_SUBS_PER_CONNECTION
    saturation: bool = True
    saturation_subscribers: int = DEFAULT_SATURATION_SUBSCRIBERS
    saturation_rates: tuple[int, ...] = DEFAULT_SATURATION_RATES
    saturation_seconds: float = DEFAULT_SATURATION_SECONDS


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of counts: {text}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("counts must be at least 1")
    return values


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--subscribers",
        type=_counts,
        default=DEFAULT_SUBSCRIBERS,
        help="subscriber counts N to measure latency at (default 1,100,1000)",
    )
    parser.add_argument(
        "--idle",
        type=_counts,
        default=DEFAULT_IDLE,
        help="idle subscriber counts to measure server memory at, opened cumulatively "
        "(default 1000,10000; pass an empty string to skip)",
    )
    parser.add_argument("--mutations", type=int, default=DEFAULT_MUTATIONS, help="writes (M)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="writes per second")
    parser.add_argument(
        "--recipes",
        type=int,
        help="PUBLIC recipes written in turn (default: one per write, so no write ever waits "
        "for the previous write to the same recipe and the rate holds even when the server "
        "falls behind)",
    )
    parser.add_argument("--users", type=int, default=10, help="subscribing users (tokens)")
    parser.add_argument(
        "--compression",
        action="store_true",
        help="let the clients negotiate permessage-deflate (browsers do; off by default to "
        "keep the clients light)",
    )
    parser.add_argument(
        "--subs-per-connection",
        type=int,
        default=DEFAULT_SUBS_PER_CONNECTION,
        help="K: Larder's idle memory is also measured with K subscriptions multiplexed on "
        "each WebSocket (default 10; the server allows WS_MAX_SUBSCRIPTIONS_PER_CONNECTION="
        f"{SERVER_SETTINGS['WS_MAX_SUBSCRIPTIONS_PER_CONNECTION']}); 1 skips it",
    )
    parser.add_argument(
        "--saturation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ramp the write rate with a fixed number of subscribers to find the delivered "
        "events/s at saturation (default: on, off with --quick)",
    )
    parser.add_argument(
        "--saturation-subscribers",
        type=int,
        default=DEFAULT_SATURATION_SUBSCRIBERS,
        help="subscribers during the saturation ramp (default 1000)",
    )
    parser.add_argument(
        "--saturation-rates",
        type=_counts,
        default=DEFAULT_SATURATION_RATES,
        help="writes/s of the ramp's steps (default 10,20,40,80)",
    )
    parser.add_argument(
        "--saturation-seconds",
        type=float,
        default=DEFAULT_SATURATION_SECONDS,
        help="length of each ramp step (default 10)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: N={','.join(map(str, QUICK_SUBSCRIBERS))}, {QUICK_MUTATIONS} "
        f"writes, idle {','.join(map(str, QUICK_IDLE))}",
    )
    args = parser.parse_args(argv)
    options = Options(
        subscribers=args.subscribers,
        idle=tuple(sorted(set(args.idle))),
        mutations=args.mutations,
        rate=args.rate,
        recipes=args.recipes or args.mutations,
        users=args.users,
        compression=args.compression,
        subs_per_connection=args.subs_per_connection,
        saturation=not args.quick if args.saturation is None else args.saturation,
        saturation_subscribers=args.saturation_subscribers,
        saturation_rates=tuple(sorted(set(args.saturation_rates))),
        saturation_seconds=args.saturation_seconds,
    )
    if args.quick:
        options = replace(
            options,
            subscribers=QUICK_SUBSCRIBERS,
            idle=QUICK_IDLE,
            mutations=QUICK_MUTATIONS,
            recipes=args.recipes or QUICK_MUTATIONS,
        )
    if not options.subscribers:
        parser.error("--subscribers needs at least one count")
    if options.mutations < 1 or options.rate <= 0 or options.recipes < 1 or options.users < 1:
        parser.error("--mutations, --recipes and --users must be at least 1, --rate above 0")
    if options.subs_per_connection < 1 or options.saturation_subscribers < 1:
        parser.error("--subs-per-connection and --saturation-subscribers must be at least 1")
    if options.subs_per_connection > int(SERVER_SETTINGS["WS_MAX_SUBSCRIPTIONS_PER_CONNECTION"]):
        parser.error("--subs-per-connection is above WS_MAX_SUBSCRIPTIONS_PER_CONNECTION")
    if options.saturation and (not options.saturation_rates or options.saturation_seconds <= 0):
        parser.error("--saturation needs rates and --saturation-seconds above 0")
    return options


# ------------------------------------------------------------------ the subscriber process
#
# Runs in its own process (multiprocessing, spawn). The parent sends it commands over a pipe:
#   ("open", spec)          open spec["count"] more subscribers, spec["per_connection"] on each
#                           WebSocket (Larder); reply ("ok", seconds)
#   ("reset",)              forget the receipts so far, pause the GC; reply ("ok", None)
#   ("collect", m, quiet, limit)  wait until every subscriber has m receipts (or `quiet` seconds
#                           pass without one, or `limit` seconds in all when not None); reply
#                           ("ok", Collected as a dict)
#   ("close",)              close every connection; reply ("ok", seconds)
#   ("exit",)
# Errors come back as ("error", text). Only builtin types cross the pipe, so it works however
# this file is run (`python bench/fanout.py` or `python -m bench.fanout`).

Receipt = tuple[float, str, int]  # (monotonic arrival time, recipe id, version)


@dataclass
class Collected:
    receipts: list[list[Receipt]]
    other_messages: list[str]
    sample: bytes | None
    waited: float


class SubscriberPool:
    """N subscriptions on WebSocket clients, one receiving task per connection: `recv`,
    `json.loads`, append (to the subscription's log, by message id, when multiplexed)."""

    def __init__(self) -> None:
        self.connections: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.receipts: list[list[Receipt]] = []
        self.other: list[str] = []
        self.sample: bytes | None = None

    async def open(self, spec: dict[str, Any]) -> float:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        started = time.monotonic()
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        tokens: list[str] = spec["tokens"]
        larder = spec["system"] == LARDER
        per_connection: int = spec.get("per_connection", 1) if larder else 1

        def subscribe(sub_id: int) -> str:
            payload = {"query": SUBSCRIPTION}
            return json.dumps({"id": str(sub_id), "type": "subscribe", "payload": payload})

        async def one(index: int, subscriptions: int) -> Any:
            async with limit:
                ws = await connect(
                    spec["url"],
                    subprotocols=[Subprotocol(WS_SUBPROTOCOL)] if larder else None,
                    compression="deflate" if spec["compression"] else None,
                    ping_interval=None,
                    open_timeout=120,
                    close_timeout=30,
                )
                if larder:
                    authorization = tokens[index % len(tokens)]
                    await ws.send(
                        json.dumps(
                            {"type": "connection_init", "payload": {"authorization": authorization}}
                        )
                    )
                    ack = json.loads(await ws.recv())
                    if ack.get("type") != "connection_ack":
                        raise BenchError(f"no connection_ack: {ack}")
                    for sub_id in range(1, subscriptions + 1):
                        await ws.send(subscribe(sub_id))
                return ws

        first = len(self.connections)
        sizes = [per_connection] * (spec["count"] // per_connection)
        if spec["count"] % per_connection:
            sizes.append(spec["count"] % per_connection)
        opened = await asyncio.gather(*(one(first + i, k) for i, k in enumerate(sizes)))
        for ws, k in zip(opened, sizes, strict=True):
            self.connections.append(ws)
            if k == 1:
                log: list[Receipt] = []
                self.receipts.append(log)
                self.tasks.append(asyncio.create_task(self._receive(ws, log)))
            else:
                logs: dict[str, list[Receipt]] = {str(i): [] for i in range(1, k + 1)}
                self.receipts.extend(logs.values())
                self.tasks.append(asyncio.create_task(self._receive_multiplexed(ws, logs)))
        return time.monotonic() - started

    async def _receive_multiplexed(self, ws: Any, logs: dict[str, list[Receipt]]) -> None:
        from websockets.exceptions import ConnectionClosed

        clock = time.monotonic
        loads = json.loads
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await ws.recv(decode=False)
                arrived = clock()
                message = loads(raw)
                kind = message.get("type")
                log = logs.get(message.get("id"))
                if kind == "next" and log is not None:
                    change = message["payload"]["data"]["recipeChanged"]
                    log.append((arrived, change["recipe"]["id"], change["version"]))
                    if self.sample is None:
                        self.sample = raw
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                else:
                    self.other.append(raw.decode()[:300])

    async def _receive(self, ws: Any, log: list[Receipt]) -> None:
        from websockets.exceptions import ConnectionClosed

        clock = time.monotonic
        loads = json.loads
        append = log.append
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await ws.recv(decode=False)
                arrived = clock()
                message = loads(raw)
                kind = message.get("type")
                if kind == "next":
                    change = message["payload"]["data"]["recipeChanged"]
                    append((arrived, change["recipe"]["id"], change["version"]))
                    if self.sample is None:
                        self.sample = raw
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                else:
                    self.other.append(raw.decode()[:300])

    def reset(self) -> None:
        """Start a measured phase: no receipts, and no garbage collection pauses until the
        connections close (the phase allocates little that is cyclic; a full collection over
        thousands of connections would stall every receiver at once)."""
        for log in self.receipts:
            log.clear()
        self.other.clear()
        gc.collect()
        gc.disable()

    async def collect(self, expected: int, quiet: float, limit: float | None = None) -> Collected:
        started = time.monotonic()
        last_total, last_progress = -1, started
        while True:
            total = sum(map(len, self.receipts))
            if all(len(log) >= expected for log in self.receipts):
                break
            now = time.monotonic()
            if limit is not None and now - started > limit:
                break
            if total != last_total:
                last_total, last_progress = total, now
            elif now - last_progress > quiet:
                break
            await asyncio.sleep(0.02)
        return Collected(
            receipts=[list(log) for log in self.receipts],
            other_messages=list(self.other),
            sample=self.sample,
            waited=time.monotonic() - started,
        )

    async def collect_builtin(
        self, expected: int, quiet: float, limit: float | None
    ) -> dict[str, Any]:
        return dict(vars(await self.collect(expected, quiet, limit)))  # no deep copy (asdict)

    async def close(self) -> float:
        started = time.monotonic()
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY * 5)

        async def one(ws: Any) -> None:
            async with limit:
                with contextlib.suppress(Exception):
                    await ws.close()

        await asyncio.gather(*(one(ws) for ws in self.connections))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.connections.clear()
        self.tasks.clear()
        self.receipts.clear()
        self.sample = None
        gc.enable()
        return time.monotonic() - started


async def _serve_commands(pipe: Connection) -> None:
    pool = SubscriberPool()
    while True:
        command = await asyncio.to_thread(pipe.recv)
        try:
            match command:
                case ("open", spec):
                    pipe.send(("ok", await pool.open(spec)))
                case ("reset",):
                    pool.reset()
                    pipe.send(("ok", None))
                case ("collect", expected, quiet, limit):
                    pipe.send(("ok", await pool.collect_builtin(expected, quiet, limit)))
                case ("close",):
                    pipe.send(("ok", await pool.close()))
                case ("exit",):
                    await pool.close()
                    pipe.send(("ok", None))
                    return
                case _:
                    pipe.send(("error", f"unknown command {command!r}"))
        except Exception as error:
            pipe.send(("error", f"{type(error).__name__}: {error}"))


def subscriber_process_main(pipe: Connection) -> None:
    """The subscriber process's entry point (uvloop when available, like the servers)."""
    try:
        import uvloop

        uvloop.run(_serve_commands(pipe))
    except ImportError:
        asyncio.run(_serve_commands(pipe))


class Subscribers:
    """The parent's handle on the subscriber process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=subscriber_process_main, args=(child,), name="fanout-subscribers"
        )
        self.process.start()
        child.close()
        self.count = 0

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def _call(self, *command: Any) -> Any:
        self._pipe.send(command)
        try:
            status, value = await asyncio.to_thread(self._pipe.recv)
        except EOFError:
            raise BenchError(f"the subscriber process exited ({self.process.exitcode})") from None
        if status != "ok":
            raise BenchError(f"subscriber process: {value}")
        return value

    async def open(
        self,
        system: str,
        url: str,
        tokens: list[str],
        count: int,
        deflate: bool,
        *,
        per_connection: int = 1,
    ) -> float:
        spec = {
            "system": system,
            "url": url,
            "tokens": tokens,
            "count": count,
            "compression": deflate,
            "per_connection": per_connection,
        }
        seconds: float = await self._call("open", spec)
        self.count += count
        return seconds

    async def reset(self) -> None:
        await self._call("reset")

    async def collect(
        self, expected: int, quiet: float = QUIET_TIMEOUT, limit: float | None = None
    ) -> Collected:
        return Collected(**await self._call("collect", expected, quiet, limit))

    async def close(self) -> float:
        seconds: float = await self._call("close")
        self.count = 0
        return seconds

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, EOFError):
                self._pipe.send(("exit",))
                if self._pipe.poll(30):
                    self._pipe.recv()
            self.process.join(10)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(10)
        self._pipe.close()


# ------------------------------------------------------------------------ baseline server


def baseline_app() -> Any:
    """A plain Starlette WebSocket endpoint: `POST /publish` sends one text to every client.

    The message is serialised once per publish (the graphql-transport-ws `next` envelope
    around the posted `data`, same separators as Strawberry) and the same text is sent to each
    connected client in turn.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    clients: set[WebSocket] = set()

    async def subscribe(websocket: WebSocket) -> None:
        await websocket.accept()
        clients.add(websocket)
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            clients.discard(websocket)

    async def publish(request: Request) -> Response:
        data = await request.json()
        text = json.dumps(
            {"id": "1", "type": "next", "payload": {"data": data}}, separators=(",", ":")
        )
        for websocket in list(clients):
            try:
                await websocket.send_text(text)
            except Exception:
                clients.discard(websocket)
        return Response(status_code=204)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"clients": len(clients)})

    async def readyz(request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(
        routes=[
            Route("/readyz", readyz),
            Route("/stats", stats),
            Route("/publish", publish, methods=["POST"]),
            WebSocketRoute("/ws", subscribe),
        ]
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve_baseline(host: str, port: int) -> int:
    """Run the baseline app with the uvicorn arguments `python -m app serve` uses."""
    import uvicorn

    # uvicorn re-raises the signal after its graceful shutdown; exit 0 instead (as app.server).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        baseline_app(),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        ws_ping_interval=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def start_baseline(workdir: Path, host: str = "127.0.0.1") -> ServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    log_path = workdir / "baseline.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-baseline",
                f"{host}:{port}",
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process=process, host=host, port=port, log_path=log_path)
    try:
        wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------- measuring


@dataclass
class LatencyResult:
    system: str
    subscribers: int
    writes: int
    latencies: list[float]  # seconds, one per matched receipt: arrival - request sent
    after_reply: list[float]  # arrival - the write's HTTP reply (< 0: arrived before it)
    missing: int
    duplicates: int
    unmatched: int
    other_messages: list[str]
    seconds: float  # first send to last receipt
    write_seconds: float  # first send to last send
    write_latencies: list[float]
    cpu: dict[str, float]

    @property
    def receipts(self) -> int:
        return len(self.latencies)

    @property
    def offered(self) -> int:
        return self.writes * self.subscribers

    @property
    def delivered_per_second(self) -> float:
        return self.receipts / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, pct: float) -> float | None:
        return percentile(self.latencies, pct) * 1000 if self.latencies else None

    def cpu_us_per_receipt(self, name: str) -> float | None:
        spent = self.cpu.get(name)
        return None if spent is None or not self.receipts else spent / self.receipts * 1e6


@dataclass
class IdleResult:
    system: str
    subscribers: int
    rss_before_kb: int
    rss_after_kb: int
    connect_seconds: float
    client_rss_kb: int
    per_connection: int = 1  # subscriptions multiplexed on each WebSocket

    @property
    def kb_per_subscriber(self) -> float:
        return (self.rss_after_kb - self.rss_before_kb) / self.subscribers

    @property
    def connections(self) -> int:
        return -(-self.subscribers // self.per_connection)


@dataclass
class SaturationStep:
    rate: float  # writes/s offered
    result: LatencyResult
    overflowed: int  # subscriptions the server closed because they fell behind (Larder)

    @property
    def offered_per_second(self) -> float:
        return self.rate * self.result.subscribers

    @property
    def bounded(self) -> bool:
        p99 = self.result.latency_ms(99)
        return (
            p99 is not None
            and p99 < SATURATION_P99_BOUND * 1000
            and self.result.missing == 0
            and self.overflowed == 0
        )

    def busy(self, name: str) -> float | None:
        spent = self.result.cpu.get(name)
        return None if spent is None else spent / self.result.seconds


@dataclass
class SystemRun:
    name: str
    latency: list[LatencyResult] = field(default_factory=list)
    idle: list[IdleResult] = field(default_factory=list)
    idle_multiplexed: list[IdleResult] = field(default_factory=list)
    saturation: list[SaturationStep] = field(default_factory=list)
    saturation_wall: float = 0.0  # seconds the saturation phase took, opening and closing included
    message_bytes: int | None = None
    sample: str | None = None
    server_cpu: float = 0.0
    server_exit: int | None = None
    server_pid: int = 0
    settings: dict[str, str] = field(default_factory=dict)


Key = tuple[str, int]  # (recipe id, version)


@dataclass
class Writes:
    """Per (recipe id, version): when its write's HTTP request was sent, when the reply came."""

    sent: dict[Key, float] = field(default_factory=dict)
    replied: dict[Key, float] = field(default_factory=dict)

    def round_trips(self) -> list[float]:
        return [self.replied[key] - self.sent[key] for key in self.replied]


class Target:
    """What differs between Larder and the baseline: where to connect, how to write, how to
    know the subscribers are registered."""

    name: str
    server: ServerProcess
    ws_url: str
    tokens: list[str]

    async def write(self, index: int, writes: Writes) -> None:
        """Make write number `index`, recording its send and reply times in `writes`."""
        raise NotImplementedError

    async def registered(self) -> int:
        raise NotImplementedError

    async def overflows(self) -> int:
        """Subscriptions the server has closed so far because they fell behind."""
        return 0

    async def wait_registered(self, count: int) -> None:
        deadline = time.monotonic() + REGISTER_TIMEOUT
        while (current := await self.registered()) != count:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: {current} subscribers registered, not {count}")
            if self.server.process.poll() is not None:
                raise BenchError(f"{self.name} server exited:\n{self.server.log_tail()}")
            await asyncio.sleep(METRICS_POLL)


def optional_metric(text: str, name: str) -> float | None:
    """A sample from Prometheus text (counters are exposed with a `_total` suffix)."""
    found = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def metric(text: str, name: str) -> float:
    value = optional_metric(text, name)
    if value is None:
        raise BenchError(f"/metrics has no {name}")
    return value


class LarderTarget(Target):
    name = LARDER

    def __init__(
        self, server: ServerProcess, http: httpx.AsyncClient, keys: BenchKeys, users: int
    ) -> None:
        self.server = server
        self.http = http
        self.ws_url = server.url.replace("http://", "ws://") + "/graphql"
        self.tokens = [f"Bearer {keys.token(f'bench-reader-{i}')}" for i in range(users)]
        self.recipe_ids: list[str] = []
        self.versions: dict[str, int] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def metrics(self) -> str:
        response = await self.http.get("/metrics")
        response.raise_for_status()
        return response.text

    async def registered(self) -> int:
        return int(metric(await self.metrics(), "larder_subscriptions"))

    async def overflows(self) -> int:
        text = await self.metrics()
        names = ("larder_subscriber_overflows", "larder_events_dropped")
        return int(sum(optional_metric(text, name) or 0 for name in names))

    async def setup(self, recipes: int) -> None:
        """Create the PUBLIC recipes (before anyone subscribes) and wait for their events."""
        before = metric(await self.metrics(), "larder_change_events")
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
        deadline = time.monotonic() + 30
        while metric(await self.metrics(), "larder_change_events") < before + recipes:
            if time.monotonic() > deadline:
                raise BenchError("the change feed did not publish the setup writes")
            await asyncio.sleep(METRICS_POLL)

    async def write(self, index: int, writes: Writes) -> None:
        recipe_id = self.recipe_ids[index % len(self.recipe_ids)]
        # One write per recipe in flight, so none conflicts; with fewer recipes than writes a
        # slow server makes later writes wait here (their send time is taken after the wait).
        async with self.locks[recipe_id]:
            expected = self.versions[recipe_id]
            variables = {
                "input": {
                    "id": recipe_id,
                    "expectedVersion": expected,
                    "title": recipe_title(index % len(self.recipe_ids), expected + 1),
                }
            }
            key = (recipe_id, expected + 1)
            writes.sent[key] = time.monotonic()
            data = await graphql(self.http, TOUCH, variables)
            writes.replied[key] = time.monotonic()
            result = data["upsertRecipe"]
            if result["__typename"] != "Recipe" or result["version"] != expected + 1:
                raise BenchError(f"upsertRecipe {recipe_id} v{expected} did not apply: {result}")
            self.versions[recipe_id] = expected + 1


class BaselineTarget(Target):
    name = BASELINE

    def __init__(self, server: ServerProcess, http: httpx.AsyncClient, recipe_ids: list[str]):
        self.server = server
        self.http = http
        self.ws_url = server.url.replace("http://", "ws://") + "/ws"
        self.tokens = []
        self.recipe_ids = recipe_ids
        self.versions = dict.fromkeys(recipe_ids, 1)

    async def registered(self) -> int:
        response = await self.http.get("/stats")
        response.raise_for_status()
        clients: int = response.json()["clients"]
        return clients

    async def write(self, index: int, writes: Writes) -> None:
        """The same `recipeChanged` data Larder would send, posted to be broadcast."""
        recipe_id = self.recipe_ids[index % len(self.recipe_ids)]
        version = self.versions[recipe_id] + 1
        self.versions[recipe_id] = version
        now = datetime.now(UTC)  # at MongoDB's precision, formatted as Strawberry does
        updated = now.replace(microsecond=now.microsecond // 1000 * 1000).isoformat(
            timespec="microseconds"
        )
        data = {
            "recipeChanged": {
                "kind": "UPDATED",
                "version": version,
                "recipe": {
                    "id": recipe_id,
                    "title": recipe_title(index % len(self.recipe_ids), version),
                    "version": version,
                    "updatedAt": updated,
                },
            }
        }
        key = (recipe_id, version)
        writes.sent[key] = time.monotonic()
        response = await self.http.post("/publish", json=data)
        writes.replied[key] = time.monotonic()
        if response.status_code != 204:
            raise BenchError(f"/publish answered {response.status_code}: {response.text[:300]}")


async def paced(
    count: int, rate: float, operation: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """Open loop: start operation i at start + i/rate whether or not earlier ones finished."""
    start = time.monotonic() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(operation(index)))
    await asyncio.gather(*tasks)


async def measure_latency(
    target: Target,
    subscribers: Subscribers,
    count: int,
    options: Options,
    cpu: CpuMeter,
) -> LatencyResult:
    await subscribers.open(target.name, target.ws_url, target.tokens, count, options.compression)
    await target.wait_registered(count)
    await subscribers.reset()
    writes = Writes()
    before = cpu.sample()
    await paced(options.mutations, options.rate, lambda i: target.write(i, writes))
    collected = await subscribers.collect(options.mutations)
    spent = CpuMeter.delta(before, cpu.sample())
    await subscribers.close()
    await target.wait_registered(0)
    return summarise(target.name, count, writes, collected, spent)


def summarise(
    system: str, count: int, writes: Writes, collected: Collected, spent: dict[str, float]
) -> LatencyResult:
    """Match every receipt to its write: latencies, missing, duplicate and unmatched ones."""
    sent, replied = writes.sent, writes.replied
    latencies: list[float] = []
    after_reply: list[float] = []
    missing = duplicates = unmatched = 0
    last = 0.0
    for log in collected.receipts:
        seen: set[Key] = set()
        for arrived, recipe_id, version in log:
            key = (recipe_id, version)
            started = sent.get(key)
            if started is None:
                unmatched += 1
            elif key in seen:
                duplicates += 1
            else:
                seen.add(key)
                latencies.append(arrived - started)
                after_reply.append(arrived - replied[key])
                last = max(last, arrived)
        missing += len(sent) - len(seen)
    first_send = min(sent.values())
    return LatencyResult(
        system=system,
        subscribers=count,
        writes=len(sent),
        latencies=latencies,
        after_reply=after_reply,
        missing=missing,
        duplicates=duplicates,
        unmatched=unmatched,
        other_messages=collected.other_messages[:5],
        seconds=max(last - first_send, 1e-9),
        write_seconds=max(sent.values()) - first_send,
        write_latencies=writes.round_trips(),
        cpu=spent,
    )


async def measure_idle(
    target: Target,
    subscribers: Subscribers,
    counts: Sequence[int],
    options: Options,
    per_connection: int = 1,
) -> list[IdleResult]:
    """Open idle subscribers cumulatively up to each count (`per_connection` subscriptions on
    each WebSocket); server VmRSS against none."""
    results: list[IdleResult] = []
    await asyncio.sleep(SETTLE_SECONDS)
    before = process_rss_kb(target.server.pid)
    opened = 0
    for count in counts:
        started = time.monotonic()
        await subscribers.open(
            target.name,
            target.ws_url,
            target.tokens,
            count - opened,
            options.compression,
            per_connection=per_connection,
        )
        await target.wait_registered(count)
        seconds = time.monotonic() - started
        opened = count
        await asyncio.sleep(SETTLE_SECONDS)
        results.append(
            IdleResult(
                system=target.name,
                subscribers=count,
                rss_before_kb=before,
                rss_after_kb=process_rss_kb(target.server.pid),
                connect_seconds=seconds,
                client_rss_kb=process_rss_kb(subscribers.pid),
                per_connection=per_connection,
            )
        )
        print(
            f"  {target.name}: {count} idle subscriptions ({per_connection} per connection) "
            f"open in {seconds:.1f} s",
            file=sys.stderr,
        )
    await subscribers.close()
    await target.wait_registered(0)
    return results


async def measure_saturation(
    target: Target, subscribers: Subscribers, options: Options, cpu: CpuMeter
) -> list[SaturationStep]:
    """N subscribers; open-loop steps of rising write rate until one is not bounded."""
    count = options.saturation_subscribers
    await subscribers.open(target.name, target.ws_url, target.tokens, count, options.compression)
    await target.wait_registered(count)
    steps: list[SaturationStep] = []
    offset = 0  # writes go on round-robin over the recipes from one step to the next
    try:
        for rate in options.saturation_rates:
            writes_count = max(1, round(rate * options.saturation_seconds))
            print(
                f"{target.name}: saturation, {count} subscribers, {rate} writes/s "
                f"({writes_count} writes)",
                file=sys.stderr,
            )
            await subscribers.reset()
            overflows_before = await target.overflows()
            writes = Writes()
            before = cpu.sample()
            await paced(writes_count, rate, shifted(target, offset, writes))
            collected = await subscribers.collect(
                writes_count, quiet=SATURATION_QUIET, limit=SATURATION_DRAIN
            )
            spent = CpuMeter.delta(before, cpu.sample())
            offset += writes_count
            step = SaturationStep(
                rate=rate,
                result=summarise(target.name, count, writes, collected, spent),
                overflowed=await target.overflows() - overflows_before,
            )
            steps.append(step)
            r = step.result
            print(
                f"  offered {step.offered_per_second:,.0f}/s, delivered "
                f"{r.delivered_per_second:,.0f}/s, p50 {r.latency_ms(50) or 0:.1f} ms, p99 "
                f"{r.latency_ms(99) or 0:.1f} ms, missing {r.missing}, overflowed "
                f"{step.overflowed}",
                file=sys.stderr,
            )
            if not step.bounded:
                break
    finally:
        await subscribers.close()
    await target.wait_registered(0)
    return steps


def shifted(
    target: Target, start: int, writes: Writes
) -> Callable[[int], Coroutine[Any, Any, None]]:
    """Write number `start + i` for operation i (the ramp's steps go on round-robin)."""
    return lambda i: target.write(start + i, writes)


def fanout_summary(larder: SystemRun, machine: Mapping[str, object]) -> dict[str, object]:
    """Larder's figures for bench/targets.py."""
    at_1000 = [r for r in larder.latency if r.subscribers == 1000]
    summary: dict[str, object] = {
        "p99_ms_1000_subscribers": at_1000[0].latency_ms(99) if at_1000 else None,
        "missing_1000_subscribers": at_1000[0].missing if at_1000 else None,
        "saturation_events_per_second": saturation_figure(larder.saturation),
        "load_before": machine.get("load_before"),
        "load_after": machine.get("load_after"),
    }
    for idle in (*larder.idle, *larder.idle_multiplexed):
        key = f"kb_per_idle_subscription_{idle.subscribers}_x{idle.per_connection}"
        summary[key] = idle.kb_per_subscriber
    return summary


def saturation_figure(steps: Sequence[SaturationStep]) -> float | None:
    """The highest delivered/s of a bounded step (p99 < 1 s, nothing missing)."""
    bounded = [s.result.delivered_per_second for s in steps if s.bounded]
    return max(bounded) if bounded else None


async def measure_multiplexed(
    env: dict[str, str],
    workdir: Path,
    keys: BenchKeys,
    previous: LarderTarget,
    subscribers: Subscribers,
    *,
    options: Options,
) -> list[IdleResult]:
    """Idle memory with K subscriptions per WebSocket, on a fresh Larder server.

    A fresh process (warmed up like the first), because the memory that closed connections
    freed is kept by the allocator: a reused server would show almost no RSS growth.
    """
    k = options.subs_per_connection
    print(f"{LARDER}: idle memory, {k} subscriptions per connection (new server)", file=sys.stderr)
    server = start_server(env, workdir)
    try:
        headers = {"Authorization": f"Bearer {keys.token(WRITER)}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120.0) as http:
            target = LarderTarget(server, http, keys, options.users)
            target.recipe_ids = previous.recipe_ids
            target.versions = previous.versions
            target.locks = {recipe_id: asyncio.Lock() for recipe_id in target.recipe_ids}
            await warm_up(target, subscribers, options)
            return await measure_idle(target, subscribers, options.idle, options, per_connection=k)
    except BenchError:
        print(server.log_tail(30), file=sys.stderr)
        raise
    finally:
        server.stop()


async def warm_up(target: Target, subscribers: Subscribers, options: Options) -> bytes | None:
    """One subscriber, a few writes: imports, caches and connection pools before measuring."""
    await subscribers.open(target.name, target.ws_url, target.tokens, 1, options.compression)
    await target.wait_registered(1)
    writes = Writes()
    for index in range(WARMUP_WRITES):
        await target.write(index, writes)
    collected = await subscribers.collect(WARMUP_WRITES, quiet=10)
    await subscribers.close()
    await target.wait_registered(0)
    if sum(map(len, collected.receipts)) != WARMUP_WRITES:
        raise BenchError(
            f"{target.name} warm-up: {sum(map(len, collected.receipts))} of {WARMUP_WRITES} "
            f"events arrived; other messages: {collected.other_messages[:3]}"
        )
    return collected.sample


async def run_system(
    target: Target,
    subscribers: Subscribers,
    options: Options,
    cpu: CpuMeter,
    run: SystemRun,
) -> None:
    print(f"{target.name}: warm-up", file=sys.stderr)
    sample = await warm_up(target, subscribers, options)
    if sample is not None:
        run.message_bytes = len(sample)
        run.sample = sample.decode()
    if options.idle:
        print(f"{target.name}: idle memory", file=sys.stderr)
        run.idle = await measure_idle(target, subscribers, options.idle, options)
    for count in options.subscribers:
        print(f"{target.name}: {count} subscribers, {options.mutations} writes", file=sys.stderr)
        result = await measure_latency(target, subscribers, count, options, cpu)
        run.latency.append(result)
        print(
            f"  p50 {result.latency_ms(50) or 0:.1f} ms, p99 {result.latency_ms(99) or 0:.1f} "
            f"ms, missing {result.missing}",
            file=sys.stderr,
        )
    if await target.overflows():
        raise BenchError(f"some {target.name} subscribers overflowed their queue")
    if options.saturation:  # after the check: overflowing is how a ramp step may fail
        started = time.monotonic()
        run.saturation = await measure_saturation(target, subscribers, options, cpu)
        run.saturation_wall = time.monotonic() - started


async def drop_database(mongodb_uri: str) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        await mongo.drop_database(DB_NAME)
    finally:
        await mongo.close()


async def run_benchmark(
    options: Options, database: Database, workdir: Path
) -> tuple[SystemRun, SystemRun]:
    keys = make_bench_keys(workdir / "keys")
    larder_run, baseline_run = SystemRun(LARDER), SystemRun(BASELINE)
    extra = {**SERVER_SETTINGS, "WS_MAX_CONNECTIONS_PER_USER": str(max_connections(options))}
    # Every write can be queued for every subscriber at once without overflowing it.
    extra["WS_SUBSCRIBER_QUEUE"] = str(max(256, options.mutations + 64))
    larder_run.settings = extra
    env = server_environment(database.uri, DB_NAME, keys.public_path, workdir / "data", **extra)
    subscribers = Subscribers()
    try:
        pids = {"clients": subscribers.pid, "writer": os.getpid()}
        if database.pid is not None:
            pids["database"] = database.pid
        server = start_server(env, workdir / "server")
        recipe_ids: list[str]
        try:
            larder_run.server_pid = server.pid
            headers = {"Authorization": f"Bearer {keys.token(WRITER)}"}
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, timeout=120.0
            ) as http:
                larder = LarderTarget(server, http, keys, options.users)
                await larder.setup(options.recipes)
                recipe_ids = list(larder.recipe_ids)
                cpu = CpuMeter({**pids, "server": server.pid})
                try:
                    await run_system(larder, subscribers, options, cpu, larder_run)
                except BenchError:
                    print(server.log_tail(30), file=sys.stderr)
                    raise
            larder_run.server_cpu = process_cpu_seconds(server.pid)
        finally:
            larder_run.server_exit = server.stop()
        if options.idle and options.subs_per_connection > 1:
            larder_run.idle_multiplexed = await measure_multiplexed(
                env, workdir / "server-multiplexed", keys, larder, subscribers, options=options
            )

        baseline = start_baseline(workdir / "baseline")
        try:
            baseline_run.server_pid = baseline.pid
            async with httpx.AsyncClient(base_url=baseline.url, timeout=120.0) as http:
                target = BaselineTarget(baseline, http, recipe_ids)
                cpu = CpuMeter({**pids, "server": baseline.pid})
                await run_system(target, subscribers, options, cpu, baseline_run)
            baseline_run.server_cpu = process_cpu_seconds(baseline.pid)
        finally:
            baseline_run.server_exit = baseline.stop()
    finally:
        subscribers.stop()
    return larder_run, baseline_run


def max_connections(options: Options) -> int:
    saturation: tuple[int, ...] = (options.saturation_subscribers,) if options.saturation else ()
    return max((*options.subscribers, *options.idle, *saturation))


def raise_open_file_limit(needed: int) -> str:
    """Raise RLIMIT_NOFILE's soft limit (inherited by the servers and the subscriber process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise BenchError(
                f"{needed} open files are needed but the hard limit is {hard}: "
                "raise it (ulimit -Hn) or measure fewer subscribers"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return f"raised from {soft} to {needed} (hard {hard})"
    return f"{soft} (hard {hard}), enough"


# -------------------------------------------------------------------------------- report


def _ratio(larder: float | None, baseline: float | None) -> str:
    if larder is None or baseline is None or baseline == 0:
        return "-"
    return f"{larder / baseline:.2f}x"


def _met(value: float | None, ok: Callable[[float], bool]) -> str:
    if value is None:
        return "-"
    return "yes" if ok(value) else "no"


def target_rows(options: Options, runs: Sequence[SystemRun]) -> list[list[object]]:
    """The issue's targets beside what this run measured."""
    rows: list[list[object]] = []
    if options.saturation:
        for run in runs:
            figure = saturation_figure(run.saturation)
            rows.append(
                [
                    "delivered events/s at saturation, one server process "
                    f"(N={options.saturation_subscribers})",
                    run.name,
                    figure,
                    f">= {TARGET_EVENTS_PER_SECOND:,}",
                    _met(figure, lambda v: v >= TARGET_EVENTS_PER_SECOND),
                ]
            )
    for run in runs:
        for mem in (*run.idle, *run.idle_multiplexed):
            unit = "subscription" if run.name == LARDER else "connection"
            how = (
                "1 subscription per connection"
                if mem.per_connection == 1
                else f"{mem.per_connection} subscriptions per connection"
            )
            if run.name != LARDER:
                how = "1 connection, no subscription protocol"
            rows.append(
                [
                    f"server RSS per idle {unit}, {mem.subscribers:,} idle ({how})",
                    run.name,
                    mem.kb_per_subscriber,
                    f"<= {TARGET_KB_PER_SUBSCRIPTION:g} KB",
                    _met(mem.kb_per_subscriber, lambda v: v <= TARGET_KB_PER_SUBSCRIPTION)
                    if run.name == LARDER
                    else "-",
                ]
            )
    return rows


def saturation_lines(options: Options, runs: Sequence[SystemRun]) -> list[str]:
    """The saturation ramp's table and each system's figure (nothing when not run)."""
    saturation_rows: list[list[object]] = [
        [
            run.name,
            step.result.subscribers,
            step.rate,
            step.offered_per_second,
            step.result.delivered_per_second,
            step.result.latency_ms(50),
            step.result.latency_ms(99),
            step.result.missing,
            step.overflowed,
            step.busy("server"),
            step.busy("clients"),
            step.busy("database"),
            step.busy("writer"),
            "yes" if step.bounded else "no",
        ]
        for run in runs
        for step in run.saturation
    ]
    lines: list[str] = []
    if saturation_rows:
        lines += [
            f"Saturation: {options.saturation_subscribers} subscribers, open-loop write rate "
            f"ramped in {options.saturation_seconds:g} s steps, stopping after the first step "
            f"that is not bounded (p99 >= {SATURATION_P99_BOUND * 1000:.0f} ms, or anything "
            f"missing); receipts are awaited at most {SATURATION_DRAIN:g} s after a step "
            "(a backlog past that counts as missing). offered/s = writes/s x N; delivered/s = "
            "receipts / (last receipt - first send); CPUs busy = CPU seconds / that time "
            "(clients = the one subscriber process, writer = this process):",
            "",
            markdown_table(
                [
                    "system",
                    "N",
                    "writes/s",
                    "offered/s",
                    "delivered/s",
                    "p50 ms",
                    "p99 ms",
                    "missing",
                    "overflowed",
                    "server CPUs",
                    "client CPUs",
                    "database CPUs",
                    "writer CPUs",
                    "bounded",
                ],
                saturation_rows,
            ),
            "",
        ]
        for run in runs:
            figure = saturation_figure(run.saturation)
            unbounded = [s for s in run.saturation if not s.bounded]
            ceiling = (
                f"; the first unbounded step delivered "
                f"{unbounded[0].result.delivered_per_second:,.0f}/s (the ceiling lies between)"
                if unbounded
                else "; no step was unbounded (add higher --saturation-rates)"
            )
            lines.append(
                f"- {run.name}: bounded up to "
                f"{'-' if figure is None else f'{figure:,.0f}'} delivered/s{ceiling}; the "
                f"phase took {run.saturation_wall:.0f} s"
            )
        lines.append("")
    return lines


def report(
    options: Options,
    database: Database,
    larder: SystemRun,
    baseline: SystemRun,
    machine: dict[str, str],
) -> str:
    runs = (larder, baseline)
    counts = sorted({*options.subscribers, *options.idle})

    def latency(run: SystemRun, n: int) -> LatencyResult | None:
        return next((r for r in run.latency if r.subscribers == n), None)

    def idle(run: SystemRun, n: int) -> IdleResult | None:
        return next((r for r in run.idle if r.subscribers == n), None)

    rows: list[list[object]] = []
    for run in runs:
        for n in counts:
            lat, mem = latency(run, n), idle(run, n)
            rows.append(
                [
                    run.name,
                    n,
                    lat.latency_ms(50) if lat else None,
                    lat.latency_ms(99) if lat else None,
                    lat.delivered_per_second if lat else None,
                    lat.missing if lat else None,
                    mem.kb_per_subscriber if mem else None,
                ]
            )
    ratio_rows: list[list[object]] = []
    for n in counts:
        la, ba = latency(larder, n), latency(baseline, n)
        lm, bm = idle(larder, n), idle(baseline, n)
        ratio_rows.append(
            [
                n,
                _ratio(la.latency_ms(50), ba.latency_ms(50)) if la and ba else "-",
                _ratio(la.latency_ms(99), ba.latency_ms(99)) if la and ba else "-",
                _ratio(la.delivered_per_second, ba.delivered_per_second) if la and ba else "-",
                _ratio(lm.kb_per_subscriber, bm.kb_per_subscriber) if lm and bm else "-",
            ]
        )
    time_rows: list[list[object]] = []
    cpu_rows: list[list[object]] = []
    for run in runs:
        for r in run.latency:
            time_rows.append(
                [
                    run.name,
                    r.subscribers,
                    r.writes / r.write_seconds if r.write_seconds > 0 else None,
                    percentile(r.write_latencies, 50) * 1000,
                    percentile(r.write_latencies, 99) * 1000,
                    percentile(r.after_reply, 50) * 1000 if r.after_reply else None,
                    percentile(r.after_reply, 99) * 1000 if r.after_reply else None,
                    max(r.latencies) * 1000 if r.latencies else None,
                ]
            )
            cpu_rows.append(
                [
                    run.name,
                    r.subscribers,
                    r.receipts,
                    r.seconds,
                    r.cpu.get("server"),
                    r.cpu.get("server", 0.0) / r.writes * 1000,
                    r.cpu_us_per_receipt("server"),
                    r.cpu.get("server", 0.0) / r.seconds,
                    r.cpu_us_per_receipt("clients"),
                    r.cpu.get("clients", 0.0) / r.seconds,
                    r.cpu.get("database"),
                    r.cpu.get("writer"),
                ]
            )
    marginal: list[str] = []
    for run in runs:
        ordered = sorted(run.latency, key=lambda r: r.subscribers)
        if len(ordered) >= 2 and ordered[-1].receipts > ordered[0].receipts:
            low, high = ordered[0], ordered[-1]
            extra = high.receipts - low.receipts
            server = (high.cpu.get("server", 0.0) - low.cpu.get("server", 0.0)) / extra * 1e6
            client = (high.cpu.get("clients", 0.0) - low.cpu.get("clients", 0.0)) / extra * 1e6
            marginal.append(
                f"- {run.name}: each extra delivery (N={low.subscribers} -> "
                f"N={high.subscribers}) costs {server:,.0f} µs of server CPU and "
                f"{client:,.0f} µs of client CPU"
            )
    idle_rows: list[list[object]] = [
        [
            r.system,
            r.subscribers,
            r.per_connection,
            r.connections,
            r.rss_before_kb / 1024,
            r.rss_after_kb / 1024,
            r.kb_per_subscriber,
            r.connect_seconds,
            r.client_rss_kb / 1024,
        ]
        for run in runs
        for r in (*run.idle, *run.idle_multiplexed)
    ]
    lines = [
        "## Larder subscription fan-out benchmark",
        "",
        "Targets (issue 6):",
        "",
        markdown_table(
            ["metric", "system", "measured", "target", "met"], target_rows(options, runs)
        ),
        "",
        *environment_lines(
            ("strawberry-graphql", "starlette", "uvicorn", "uvloop", "websockets", "pymongo")
        ),
        f"- database: {database.description}",
        f"- workload: {options.mutations} writes per N at {options.rate:g}/s (open loop), "
        f"round-robin over {options.recipes} PUBLIC recipes; subscribers spread over "
        f"{options.users} users, one WebSocket and one subscription each; every subscriber "
        "must receive every write",
        "- Larder server settings: "
        + ", ".join(f"{k}={v}" for k, v in sorted(larder.settings.items())),
        "- Larder: `python -m app serve` (APP_ENV=production), subscription "
        f"`{SUBSCRIPTION}` over graphql-transport-ws; writes are `upsertRecipe(input: {{id, "
        "expectedVersion, title}})` over HTTP/1.1 keep-alive",
        "- baseline: Starlette WebSocket endpoint under uvicorn (same uvicorn.run arguments); "
        "`POST /publish` serialises the same `next` message once and `await send_text()`s it "
        "to each client in turn",
        f"- message size: Larder {larder.message_bytes} bytes, baseline "
        f"{baseline.message_bytes} bytes; permessage-deflate "
        f"{'negotiated' if options.compression else 'off (clients do not offer it)'}",
        "- clients: one separate process (multiprocessing spawn, uvloop) holds every "
        "subscriber, one task per connection doing `await ws.recv()` + `json.loads` + append; "
        "the writer (this process) only sends and timestamps, so the writer's send times are "
        "not delayed by receipts. Latency = arrival (after recv) - request sent, both "
        "`time.monotonic()`; it includes the client process's own queueing",
        f"- open files: {machine['nofile']}",
        "",
        markdown_table(
            ["system", "N", "p50 ms", "p99 ms", "delivered/s", "missing", "RSS/sub KB"], rows
        ),
        "",
        "delivered/s = receipts / (last receipt - first send); offered load is N x "
        f"{options.rate:g}/s. RSS/sub = (server VmRSS with N idle subscribers - VmRSS with "
        "none) / N, idle subscribers opened cumulatively.",
        "",
        "Larder / baseline:",
        "",
        markdown_table(["N", "p50", "p99", "delivered/s", "RSS/sub"], ratio_rows),
        "",
        "Where the time goes: the write's HTTP round trip, and arrival minus that reply "
        "(Larder: change stream -> hub -> Strawberry -> socket -> client; the baseline "
        "broadcasts before it replies, so its figure is negative):",
        "",
        markdown_table(
            [
                "system",
                "N",
                "writes/s",
                "write p50 ms",
                "write p99 ms",
                "after reply p50 ms",
                "after reply p99 ms",
                "max latency ms",
            ],
            time_rows,
        ),
        "",
        "CPU during each latency phase (user+sys from /proc/<pid>/stat, first send to last "
        "receipt; clients = the subscriber process, writer = this process):",
        "",
        markdown_table(
            [
                "system",
                "N",
                "receipts",
                "phase s",
                "server CPU s",
                "server ms/write",
                "server µs/receipt",
                "server CPUs busy",
                "client µs/receipt",
                "client CPUs busy",
                "database CPU s",
                "writer CPU s",
            ],
            cpu_rows,
        ),
        "",
        *marginal,
        "",
        "Idle subscribers:",
        "",
        markdown_table(
            [
                "system",
                "N",
                "subs/conn",
                "connections",
                "server RSS before MB",
                "server RSS after MB",
                "KB/sub",
                "connect s",
                "client RSS MB",
            ],
            idle_rows,
        ),
        "",
        "KB/sub = RSS delta / subscriptions (baseline: / connections). With subs/conn > 1 "
        "every WebSocket carries that many graphql-transport-ws subscriptions (ids 1..K), "
        "measured on a second, fresh Larder server (warmed up the same way): memory freed by "
        "closed connections stays with the allocator, so a reused process would read ~0.",
        "",
    ]
    lines += saturation_lines(options, runs)
    for run in runs:
        results = [*run.latency, *(step.result for step in run.saturation)]
        odd = [m for r in results for m in r.other_messages]
        dupes = sum(r.duplicates for r in results)
        unmatched = sum(r.unmatched for r in results)
        if odd or dupes or unmatched:
            lines.append(
                f"- {run.name}: {dupes} duplicate and {unmatched} unmatched receipts; "
                f"other messages: {odd[:3]}"
            )
    lines += [
        f"- load average before: {machine['load_before']}",
        f"- load average after:  {machine['load_after']}",
        f"- Larder server (pid {larder.server_pid}): {larder.server_cpu:.2f} s CPU over its "
        f"lifetime, exit code {larder.server_exit}",
        f"- baseline server (pid {baseline.server_pid}): {baseline.server_cpu:.2f} s CPU over "
        f"its lifetime, exit code {baseline.server_exit}",
    ]
    if "database_cpu" in machine:
        lines.append(
            f"- database daemon (pid {database.pid}): {machine['database_cpu']} s CPU over its "
            "lifetime"
        )
    if larder.sample:
        lines.append(f"- a Larder message: `{larder.sample}`")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "--serve-baseline":  # the baseline server's process
        host, _, port = args[1].rpartition(":")
        return serve_baseline(host, int(port))
    options = parse_args(args)
    machine = {"load_before": read_loadavg()}
    started = time.monotonic()
    try:
        machine["nofile"] = raise_open_file_limit(max_connections(options) + 1024)
        with (
            open_database() as database,
            tempfile.TemporaryDirectory(prefix="larder-fanout-") as tmp,
        ):
            asyncio.run(drop_database(database.uri))
            try:
                larder, baseline = asyncio.run(run_benchmark(options, database, Path(tmp)))
                if database.pid is not None:
                    machine["database_cpu"] = f"{process_cpu_seconds(database.pid):.2f}"
            finally:
                asyncio.run(drop_database(database.uri))
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    machine["load_after"] = read_loadavg()
    print(report(options, database, larder, baseline, machine))
    write_summary("fanout", fanout_summary(larder, machine))
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
