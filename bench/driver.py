"""The load driver behind `make bench` (bench/run.py): the processes under test, the clients
that load them and what is read from /proc. Scenario files (writes, fanout, memory, sync) only
say what to run with these pieces.

- `Bench`: the shared SecantusDB daemon (app.embedded, on a temp dir, so with the same
  `--sync-on-commit` as production), keys and tokens; `larder()` / `peer()` start a system on
  it with its own database name (Larder: `python -m app serve`, APP_ENV=production; peer: the
  Apollo Server in ../shared/peers/apollo, installed outside the repo).
- `Api`: GraphQL over HTTP (upsertRecipe with the same small selection for every system).
- `Swarm`: WebSocket subscribers to `recipeChanged` in child processes; latency of each event
  = its arrival - the send time the writer put in the recipe title (time.time(), so the two
  processes compare).
- `paced_writes`: open-loop writes at a fixed rate; `probe`: GET /healthz every 50 ms.
- /proc: `cpu_seconds`, `rss_kb`; `percentile`; `table`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from app.auth.keys import load_private_pem, write_key_pair
from app.auth.tokens import mint_token
from app.embedded import EmbeddedDatabase

REPO = Path(__file__).resolve().parent.parent
PEER_SOURCE = Path(os.environ.get("LARDER_PEER_DIR", REPO.parent / "shared" / "peers" / "apollo"))
PEER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "larder-bench-peer"
USER = "bench-user"
READY_TIMEOUT = 60.0


class BenchError(RuntimeError):
    """The benchmark could not run, or an operation did not do what it should."""


# ------------------------------------------------------------------------------------ /proc

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads (/proc/PID/stat fields 14 and 15)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


def raise_open_files(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it) to `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class CpuMeter:
    """CPU seconds of named processes between `__enter__` and `__exit__`."""

    pids: dict[str, int]
    spent: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.spent = {n: cpu_seconds(p) - self._before[n] for n, p in self.pids.items()}


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class System:
    """A server under test: where it listens and its process (for /proc)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not ready after {READY_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(name: str, cmd: list[str], env: dict[str, str], workdir: Path) -> System:
    port = free_port()
    log = workdir / f"{name.lower().replace(' ', '-')}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd,
            env={**env, "PORT": str(port)},
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return System(name, process, port, log)


def install_peer() -> Path | str:
    """The peer copied to PEER_CACHE with `npm ci` done there once (never inside the repo);
    a reason string when it cannot be."""
    if not (PEER_SOURCE / "server.mjs").exists():
        return f"peer not found at {PEER_SOURCE}"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed"
    lock = (PEER_SOURCE / "package-lock.json").read_bytes()
    stamp = PEER_CACHE / "node_modules" / ".larder-lock"
    if not stamp.exists() or stamp.read_bytes() != lock:
        shutil.rmtree(PEER_CACHE, ignore_errors=True)
        PEER_CACHE.mkdir(parents=True)
        for item in PEER_SOURCE.iterdir():
            if item.is_file():
                shutil.copyfile(item, PEER_CACHE / item.name)
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PEER_CACHE,
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr.strip()[-300:]}"
        stamp.write_bytes(lock)
    return PEER_CACHE


class Bench:
    """The shared daemon, keys and temp dir for one `make bench` run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = EmbeddedDatabase(storage=str(workdir / "db"), log_path=workdir / "db.log")
        self.db.start()
        assert self.db.process is not None
        self.daemon_pid = self.db.process.pid
        private_path, self.public_key = write_key_pair(workdir / "keys", "rsa")
        self._private = load_private_pem(private_path)
        self._viewers: list[str] = []

    @property
    def uri(self) -> str:
        return self.db.uri

    def token(self, sub: str = USER) -> str:
        return "Bearer " + mint_token(self._private, sub=sub, ttl_seconds=6 * 3600)

    def viewer_tokens(self, count: int) -> list[str]:
        """Tokens of `count` distinct users (`viewer-0`...), minted once per run."""
        while len(self._viewers) < count:
            self._viewers.append(self.token(f"viewer-{len(self._viewers)}"))
        return self._viewers[:count]

    def close(self) -> None:
        self.db.stop()

    def larder_env(self, db_name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "JWT_JWKS_FILE"}
        env.update(
            APP_ENV="production",
            MONGODB_URI=self.uri,
            MONGODB_DB=db_name,
            JWT_PUBLIC_KEY_FILE=str(self.public_key),
            DATA_DIR=str(self.workdir / "data"),
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(REPO),
            # The benchmark measures throughput, not the per-user abuse limits.
            RATE_LIMIT_MUTATIONS_PER_SECOND="1000000",
            RATE_LIMIT_MUTATIONS_BURST="1000000",
            RATE_LIMIT_WS_CONNECTS_PER_SECOND="1000000",
            RATE_LIMIT_WS_CONNECTS_BURST="1000000",
            WS_MAX_CONNECTIONS_PER_USER="100000",
        )
        return env

    @contextlib.contextmanager
    def larder(
        self, db_name: str = "larder_bench", cmd: list[str] | None = None, **settings: str
    ) -> Iterator[System]:
        """`serve` in production mode (or `cmd`, which must serve Larder's app on $PORT);
        `settings` are extra environment variables."""
        cmd = cmd or [sys.executable, "-m", "app", "serve"]  # PORT from the environment
        env = {**self.larder_env(db_name), **settings}
        with self._running("Larder", cmd, env, "/readyz") as system:
            yield system

    @contextlib.contextmanager
    def peer(self, where: Path, db_name: str = "larder_peer") -> Iterator[System]:
        env = {
            **os.environ,
            "NODE_ENV": "production",
            "HOST": "127.0.0.1",
            "MONGODB_URI": self.uri,
            "MONGODB_DB": db_name,
            "JWT_PUBLIC_KEY_FILE": str(self.public_key),
        }
        with self._running(
            "Apollo peer", ["node", str(where / "server.mjs")], env, "/healthz"
        ) as system:
            yield system

    @contextlib.contextmanager
    def _running(
        self, name: str, cmd: list[str], env: dict[str, str], ready: str
    ) -> Iterator[System]:
        system = _spawn(name, cmd, env, self.workdir)
        try:
            system.wait_ready(ready)
            yield system
        finally:
            system.stop()


@contextlib.contextmanager
def bench_session() -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="larder-bench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            yield bench
        finally:
            bench.close()


# -------------------------------------------------------------------------------- GraphQL

UPSERT = """mutation Upsert($input: RecipeInput!) { upsertRecipe(input: $input) {
  __typename ... on Recipe { id version } ... on VersionConflict { currentVersion } } }"""
SUBSCRIBE = "subscription { recipeChanged { kind version recipe { id title } } }"


def recipe_input(index: int, title: str | None = None) -> dict[str, Any]:
    """~1 KB of recipe in the fields both systems accept."""
    return {
        "title": title or f"Lemon pancakes {index}",
        "description": "A weeknight favourite that scales well. Make the batter ahead and rest "
        "it in the fridge; it keeps for a day. Serve with whatever fruit is in season. " * 2,
        "ingredients": [
            {"name": name, "quantity": qty, "unit": unit}
            for name, qty, unit in (
                ("flour", 250.0, "g"),
                ("milk", 300.0, "ml"),
                ("egg", 2.0, "piece"),
                ("butter", 30.0, "g"),
                ("sugar", 1.0, "tbsp"),
                ("salt", 0.5, "tsp"),
            )
        ],
        "steps": [
            "Whisk the dry ingredients together in a large bowl.",
            "Beat the eggs with the milk and melted butter.",
            "Pour the wet ingredients into the dry and stir until just combined.",
            "Rest the batter for ten minutes, then cook on a hot buttered pan.",
        ],
        "tags": ["breakfast", "vegetarian", "quick"],
        "servings": 2 + index % 4,
    }


class Api:
    """One HTTP client of a system, signed in."""

    def __init__(self, system: System, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=system.url, headers={"authorization": token}, timeout=60
        )

    async def upsert(self, fields: dict[str, Any]) -> tuple[str, int]:
        """upsertRecipe; the recipe's (id, version), BenchError on a conflict or an error."""
        reply = await self.client.post(
            "/graphql", json={"query": UPSERT, "variables": {"input": fields}}
        )
        body = reply.json()
        result = (body.get("data") or {}).get("upsertRecipe") or {}
        if reply.status_code != 200 or body.get("errors") or result.get("__typename") != "Recipe":
            raise BenchError(f"upsertRecipe: {reply.status_code} {reply.text[:300]}")
        return result["id"], result["version"]

    async def close(self) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------------------- subscribers


def _swarm_main(conn: Connection, url: str, deflate: bool) -> None:
    asyncio.run(_swarm(conn, url, deflate))


async def _swarm(conn: Connection, url: str, deflate: bool) -> None:  # noqa: PLR0915
    """The child process: sockets, one reader task each; commands from `conn`."""
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.typing import Subprotocol

    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    counts: list[int] = []
    latencies: list[float] = []
    arrivals = [0.0, 0.0]  # first, last (time.time())
    errors: list[str] = []

    async def read(ws: ClientConnection, slot: int) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    title = message["payload"]["data"]["recipeChanged"]["recipe"]["title"]
                    parts = title.split()
                    if parts[0] == "fanout":
                        latencies.append(now - float(parts[1]))
                        counts[slot] += 1
                        arrivals[0] = arrivals[0] or now
                        arrivals[1] = now
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind != "pong":
                    errors.append(str(raw)[:200])

    async def open_one(limit: asyncio.Semaphore, token: str) -> None:
        async with limit:
            ws = await connect(
                url,
                subprotocols=[Subprotocol("graphql-transport-ws")],
                ping_interval=None,
                open_timeout=120,
                max_queue=None,
                compression="deflate" if deflate else None,
            )
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"authorization": token}})
            )
            ack = json.loads(await ws.recv())
            if ack.get("type") != "connection_ack":
                raise BenchError(f"no connection_ack: {ack}")
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
            )
            counts.append(0)
            sockets.append(ws)
            readers.append(asyncio.create_task(read(ws, len(counts) - 1)))

    async def wait(expected: int, quiet: float) -> None:
        last, since = -1, time.monotonic()
        while min(counts, default=expected) < expected:
            total = sum(counts)
            if total != last:
                last, since = total, time.monotonic()
            elif time.monotonic() - since > quiet:
                return
            await asyncio.sleep(0.02)

    async def handle(command: str, arg: Any) -> Any:
        reply: Any = None
        if command == "open":
            limit = asyncio.Semaphore(50)
            await asyncio.gather(*(open_one(limit, token) for token in arg))
            reply = len(sockets)
        elif command == "mark":
            counts[:] = [0] * len(counts)
            latencies.clear()
            arrivals[:] = [0.0, 0.0]
        elif command == "wait":
            await wait(*arg)
            reply = {
                "latencies": latencies,
                "received": sum(counts),
                "first": arrivals[0],
                "last": arrivals[1],
                "errors": errors[:5],
            }
        elif command == "close":
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            for task in readers:
                task.cancel()
        return reply

    while True:
        command, arg = await asyncio.to_thread(conn.recv)
        try:
            reply = await handle(command, arg)
        except Exception as exc:  # the parent raises it: no silent hang on a failed open
            conn.send(("error", repr(exc)[:500]))
            continue
        conn.send(("ok", reply))
        if command == "close":
            return


class _Child:
    """One swarm process and its pipe."""

    def __init__(self, url: str, deflate: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        args = (child, url, deflate)
        self.process = context.Process(target=_swarm_main, args=args, daemon=True)
        self.process.start()

    async def call(self, command: str, arg: Any) -> Any:
        self.conn.send((command, arg))
        status, reply = await asyncio.to_thread(self._receive)
        if status != "ok":
            raise BenchError(f"subscriber swarm, {command}: {reply}")
        return reply

    def _receive(self) -> tuple[str, Any]:
        while not self.conn.poll(1.0):
            if not self.process.is_alive():
                return "error", f"the swarm process exited ({self.process.exitcode})"
        answer: tuple[str, Any] = self.conn.recv()
        return answer


class Swarm:
    """WebSocket subscribers to recipeChanged, spread over `processes` child processes (so the
    writer's clock and the receivers share no event loop, and one client process does not cap
    what the server can deliver). Like browsers, they offer permessage-deflate unless
    `deflate` is off; each server decides whether to accept it. Socket i signs in with
    `tokens[i % len(tokens)]`: one user per socket, as real subscribers are, so each server
    checks each subscriber's permissions on its own."""

    def __init__(
        self, system: System, tokens: Sequence[str], deflate: bool, processes: int = 2
    ) -> None:
        self._children = [_Child(system.ws_url, deflate) for _ in range(processes)]
        self._tokens = list(tokens)
        self.size = 0

    async def _all(self, command: str, args: Sequence[Any]) -> list[Any]:
        calls = (c.call(command, a) for c, a in zip(self._children, args, strict=True))
        return list(await asyncio.gather(*calls))

    async def open(self, count: int) -> None:
        tokens = [self._tokens[(self.size + i) % len(self._tokens)] for i in range(count)]
        shares = [tokens[i :: len(self._children)] for i in range(len(self._children))]
        self.size = sum(await self._all("open", shares))

    async def mark(self) -> None:
        """Forget what arrived so far: a measured phase starts."""
        await self._all("mark", [None] * len(self._children))

    async def wait(self, expected: int, quiet: float = 5.0) -> dict[str, Any]:
        """Until every subscriber has `expected` events since `mark` (or none came for
        `quiet` s): latencies, received, first/last arrival, unexpected messages."""
        parts = await self._all("wait", [(expected, quiet)] * len(self._children))
        return {
            "latencies": [x for p in parts for x in p["latencies"]],
            "received": sum(p["received"] for p in parts),
            "first": min((p["first"] for p in parts if p["first"]), default=0.0),
            "last": max(p["last"] for p in parts),
            "errors": [e for p in parts for e in p["errors"]],
        }

    async def close(self) -> None:
        await self._all("close", [None] * len(self._children))
        for child in self._children:
            child.process.join(10)


# ------------------------------------------------------------------------------- writers


class Writer:
    """Writes fan-out events: updates round-robin over a few PUBLIC recipes (every subscriber,
    whoever signed in, may read them), each title carrying its send time
    (`fanout <time.time()> <seq>`). One write in flight per recipe (CAS versions)."""

    def __init__(self, api: Api, recipes: int = 32) -> None:
        self.api = api
        self.count = recipes
        self.versions: dict[str, int] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.seq = 0

    async def setup(self) -> None:
        for i in range(self.count):
            fields = {**recipe_input(i, f"setup {i}"), "visibility": "PUBLIC"}
            rid, version = await self.api.upsert(fields)
            self.versions[rid] = version
            self.locks[rid] = asyncio.Lock()

    async def write(self) -> None:
        self.seq += 1
        seq = self.seq
        rid = list(self.versions)[seq % self.count]
        async with self.locks[rid]:
            title = f"fanout {time.time():.6f} {seq}"
            fields = {"id": rid, "expectedVersion": self.versions[rid], "title": title}
            _, self.versions[rid] = await self.api.upsert(fields)

    async def paced(self, rate: float, count: int) -> float:
        """`count` writes started at `rate`/s (open loop); the seconds they took."""
        started = time.monotonic()
        tasks = []
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.write()))
        await asyncio.gather(*tasks)
        return time.monotonic() - started


async def probe(url: str, stop: asyncio.Event, every: float = 0.05) -> list[float]:
    """GET /healthz every `every` s until `stop`: each answer's time beyond nothing, i.e. how
    long the server's event loop (and ours) kept a trivial request waiting."""
    lags: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            await client.get("/healthz")
            lags.append(time.perf_counter() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    return lags


async def settle(pid: int, idle: float = 0.05, most: float = 30.0) -> None:
    """Until process `pid` used under `idle` CPU seconds in 0.5 s (or `most` s passed)."""
    deadline = time.monotonic() + most
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < idle:
            return
        last = now


# -------------------------------------------------------------------------------- output


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table, columns padded."""
    cells = [list(headers), *([fmt(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
