"""Shared pieces for the benchmarks in bench/ (they are scripts, not tests).

- the database: `open_database()` (MONGODB_URI, else an embedded in-memory SecantusDB daemon)
- keys and tokens: `make_bench_keys()`
- the real server as a separate process: `start_server()` / `ServerProcess.stop()`
  (`running_server()` does both), `free_port()`, `wait_until_ready()`
- workload data: `recipe_input()` (GraphQL input), `stored_recipe()` (the stored document)
- measurement: `run_phase()` runs closed-loop workers and times every operation,
  `percentile()`, `CpuMeter` / `process_cpu_seconds()` / `process_rss_kb()` (from /proc),
  `read_loadavg()`
- output: `markdown_table()`, `environment_lines()`
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from app.auth.keys import key_id, load_private_pem, write_key_pair
from app.auth.tokens import mint_token
from app.embedded import EmbeddedDatabase
from app.models.fields import CREATE_DEFAULTS
from app.models.recipe import derived_fields
from app.services.writes import stamp_time

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0
READY_POLL_INTERVAL = 0.05
STOP_TIMEOUT = 15.0


class BenchError(RuntimeError):
    """The benchmark could not run, or an operation did not do what it should."""


# ------------------------------------------------------------------------------- database


@dataclass(frozen=True, slots=True)
class Database:
    """Where the benchmark's data lives. `pid` is the embedded daemon (None for MONGODB_URI)."""

    uri: str
    pid: int | None

    @property
    def description(self) -> str:
        if self.pid is None:
            return "MONGODB_URI (external server)"
        return "embedded SecantusDB daemon (storage :memory:)"


@contextlib.contextmanager
def open_database() -> Iterator[Database]:
    """MONGODB_URI when set, else an embedded in-memory SecantusDB daemon for the block."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield Database(uri=uri, pid=None)
        return
    with EmbeddedDatabase(storage=":memory:") as embedded:
        assert embedded.process is not None
        yield Database(uri=embedded.uri, pid=embedded.process.pid)


# ------------------------------------------------------------------------------ keys/tokens


@dataclass(frozen=True, slots=True)
class BenchKeys:
    """An RSA key pair on disk: the server gets `public_path`, the benchmark signs tokens."""

    private: PrivateKeyTypes
    public_path: Path

    def token(self, sub: str = "bench-user", ttl_seconds: int = 6 * 3600) -> str:
        return mint_token(
            self.private,
            sub=sub,
            ttl_seconds=ttl_seconds,
            kid=key_id(self.private.public_key()),
        )


def make_bench_keys(directory: Path) -> BenchKeys:
    private_path, public_path = write_key_pair(directory, "rsa")
    return BenchKeys(private=load_private_pem(private_path), public_path=public_path)


# ---------------------------------------------------------------------------- the server


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual bind-to-0 trick; racy but fine here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """`python -m app serve` running as a child process."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 10, max_chars: int = 4000) -> str:
        """The end of the server's output (for error messages)."""
        try:
            text = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
        return text if len(text) <= max_chars else "..." + text[-max_chars:]

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not stop in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait()
        return self.process.returncode


def server_environment(
    mongodb_uri: str, db_name: str, public_key_file: Path, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment for a production-mode server on `mongodb_uri` / `db_name`."""
    env = dict(os.environ)
    env.pop("JWT_JWKS_FILE", None)  # only one key source may be set
    python_path = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(
        {
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DB": db_name,
            "JWT_PUBLIC_KEY_FILE": str(public_key_file),
            "APP_ENV": "production",
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(data_dir),
            "PYTHONPATH": os.pathsep.join(python_path),
            # Benchmarks measure throughput, not the per-user abuse limits.
            "RATE_LIMIT_MUTATIONS_PER_SECOND": "1000000",
            "RATE_LIMIT_MUTATIONS_BURST": "1000000",
            "RATE_LIMIT_WS_CONNECTS_PER_SECOND": "1000000",
            "RATE_LIMIT_WS_CONNECTS_BURST": "1000000",
        }
    )
    env.update(extra)
    return env


def start_server(
    env: Mapping[str, str],
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    ready_timeout: float = READY_TIMEOUT,
    python_args: Sequence[str] = (),
) -> ServerProcess:
    """Start `python [python_args] -m app serve` and wait for /readyz.

    The cwd is `workdir`, so no stray `.env` is read; the log goes to `workdir/server.log`.
    `python_args` can wrap the server, e.g. `("-m", "cProfile", "-o", "server.prof")`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(host) if port is None else port
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                *python_args,
                "-m",
                "app",
                "serve",
                "--host",
                host,
                "--port",
                str(port),
            ],
            env=dict(env),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process=process, host=host, port=port, log_path=log_path)
    try:
        wait_until_ready(server, timeout=ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_ready(
    server: ServerProcess, *, timeout: float = READY_TIMEOUT, interval: float = READY_POLL_INTERVAL
) -> float:
    """Poll GET /readyz until it answers 200; returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise BenchError(f"the server exited with {code}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the server was not ready after {timeout:.0f}s:\n{server.log_tail()}"
                )
            time.sleep(interval)


@contextlib.contextmanager
def running_server(
    env: Mapping[str, str],
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    python_args: Sequence[str] = (),
) -> Iterator[ServerProcess]:
    """`start_server()` for the block, stopped (SIGTERM, wait) at its end."""
    server = start_server(env, workdir, host=host, python_args=python_args)
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- GraphQL

RECIPE_FIELDS = """
  id title description ingredients { name quantity unit note } steps tags servings
  prepMinutes cookMinutes imageUrl ownerId collaborators visibility version createdAt
  updatedAt deleted
"""

# What a syncing client sends: the full recipe back, and the current one on a conflict
# (the same text as tests/support.py's UPSERT).
UPSERT = f"""
mutation Upsert($input: RecipeInput!) {{
  upsertRecipe(input: $input) {{
    __typename
    ... on Recipe {{ {RECIPE_FIELDS} }}
    ... on VersionConflict {{ id expectedVersion currentVersion current {{ {RECIPE_FIELDS} }} }}
  }}
}}
"""


async def graphql(
    client: httpx.AsyncClient, query: str, variables: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """POST /graphql; the `data` of a 200 answer without errors, else BenchError."""
    response = await client.post(
        "/graphql", json={"query": query, "variables": dict(variables or {})}
    )
    if response.status_code != 200:
        raise BenchError(f"/graphql answered {response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    if body.get("errors"):
        raise BenchError(f"/graphql errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


# ------------------------------------------------------------------------ workload data

_DISHES = ("Pancakes", "Risotto", "Curry", "Focaccia", "Gazpacho", "Shakshuka", "Ramen", "Tart")
_ADJECTIVES = ("Lemon", "Smoky", "Herbed", "Spiced", "Golden", "Rustic", "Crispy", "Creamy")
_INGREDIENTS = (
    ("flour", 250.0, "g"),
    ("milk", 300.0, "ml"),
    ("egg", 2.0, None),
    ("butter", 30.0, "g"),
    ("sugar", 1.0, "tbsp"),
    ("salt", 0.5, "tsp"),
    ("lemon zest", 1.0, "tsp"),
    ("baking powder", 2.0, "tsp"),
)
_TAGS = ("breakfast", "vegetarian", "quick", "weekend", "family", "baking", "spicy", "summer")


def recipe_title(index: int, revision: int = 0) -> str:
    dish = _DISHES[index % len(_DISHES)]
    adjective = _ADJECTIVES[(index // len(_DISHES)) % len(_ADJECTIVES)]
    suffix = f" take {revision}" if revision else ""
    return f"{adjective} {dish} {index}{suffix}"


def recipe_input(index: int) -> dict[str, Any]:
    """A realistic RecipeInput (GraphQL field names) for a new recipe."""
    return {
        "title": recipe_title(index),
        "description": (
            "A weeknight favourite that scales well. Make the batter ahead and rest it in the "
            "fridge; it keeps for a day. Serve with whatever fruit is in season."
        ),
        "ingredients": [
            {"name": name, "quantity": quantity, "unit": unit}
            if unit
            else {"name": name, "quantity": quantity}
            for name, quantity, unit in _INGREDIENTS
        ],
        "steps": [
            "Whisk the dry ingredients together in a large bowl.",
            "Beat the eggs with the milk and melted butter.",
            "Pour the wet ingredients into the dry and stir until just combined.",
            "Rest the batter for ten minutes.",
            "Cook on a hot buttered pan until bubbles form, then flip.",
            "Serve immediately.",
        ],
        "tags": [_TAGS[(index + k) % len(_TAGS)] for k in range(3)],
        "servings": 2 + index % 4,
        "prepMinutes": 10 + index % 20,
        "cookMinutes": 15 + index % 30,
        "imageUrl": f"https://images.example.com/recipes/{index}.jpg",
    }


_STORED_NAMES = {
    "prepMinutes": "prep_minutes",
    "cookMinutes": "cook_minutes",
    "imageUrl": "image_url",
}


def stored_recipe(recipe_id: str, index: int, owner_id: str) -> dict[str, Any]:
    """The document the server would store for `recipe_input(index)` (derived fields included)."""
    fields = {_STORED_NAMES.get(k, k): v for k, v in recipe_input(index).items()}
    now = stamp_time(time.time() * 1000)
    doc: dict[str, Any] = {
        **CREATE_DEFAULTS,
        **fields,
        "owner_id": owner_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
    }
    doc.update(derived_fields(doc))
    return {"_id": recipe_id, **doc}


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal non-negative integers (the first ones get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def deal(items: Sequence[str], parts: int) -> list[list[str]]:
    """Round-robin `items` into `parts` disjoint lists (each worker owns one)."""
    return [list(items[i::parts]) for i in range(parts)]


# --------------------------------------------------------------------------- measurement


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `pct` in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_rss_kb(pid: int) -> int:
    """Resident set size of a process (VmRSS from /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid} (a zombie?)")


@dataclass
class CpuMeter:
    """CPU seconds of named processes (e.g. client, server, database) between two samples."""

    pids: dict[str, int] = field(default_factory=dict)

    def sample(self) -> dict[str, float]:
        sampled: dict[str, float] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                sampled[name] = process_cpu_seconds(pid)
        return sampled

    @staticmethod
    def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        return {name: after[name] - before[name] for name in before if name in after}


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One measured phase: every operation's latency (seconds) and the wall time of the phase."""

    name: str
    latencies: list[float]
    seconds: float
    concurrency: int
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000.0

    def cpu_us_per_op(self, process: str) -> float | None:
        spent = self.cpu_seconds.get(process)
        return None if spent is None or not self.ops else spent / self.ops * 1e6


Operation = Callable[[], Awaitable[None]]


async def run_phase(
    name: str,
    operations: Sequence[Operation],
    counts: Sequence[int],
    *,
    cpu: CpuMeter | None = None,
) -> PhaseResult:
    """Closed loop: worker i awaits `operations[i]()` `counts[i]` times, back to back.

    Every call is timed on its own (perf_counter around the await); the phase's wall time runs
    from starting the first worker to the last one finishing.
    """
    if len(operations) != len(counts):
        raise ValueError("one count per operation")
    latencies: list[float] = []

    async def worker(operation: Operation, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await operation()
            latencies.append(time.perf_counter() - started)

    before = cpu.sample() if cpu else {}
    started = time.perf_counter()
    await asyncio.gather(*(worker(op, n) for op, n in zip(operations, counts, strict=True)))
    seconds = time.perf_counter() - started
    spent = CpuMeter.delta(before, cpu.sample()) if cpu else {}
    return PhaseResult(name, latencies, seconds, len(operations), spent)


def read_loadavg() -> str:
    """The 1, 5 and 15 minute load averages (and running/total tasks), from /proc/loadavg."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:4])
    except OSError:
        return "unavailable"


# -------------------------------------------------------------------------------- output


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers right-aligned, columns padded."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) for row in rows)
        for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if num else "-" * (w + 2)
        for w, num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(cells[0]), rule + "|", *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def source_revision() -> str:
    """The git commit of the checkout being measured, `+dirty` with uncommitted changes."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{revision}+dirty" if dirty else revision


def environment_lines(packages: Sequence[str] = ("pymongo",)) -> list[str]:
    """Date, source, Python, package versions and the machine, one `- key: value` line each."""
    versions = ", ".join(f"{name} {package_version(name)}" for name in packages)
    return [
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- source: {source_revision()} ({REPO_ROOT})",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- packages: {versions}",
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"({cpu_model()})",
    ]


SUMMARY_ENV = "LARDER_BENCH_SUMMARY"


def write_summary(section: str, figures: Mapping[str, object]) -> None:
    """For bench/targets.py: merge `figures` under `section` into the JSON file named by
    $LARDER_BENCH_SUMMARY (does nothing when it is unset)."""
    import json

    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    target = Path(path)
    data = json.loads(target.read_text()) if target.exists() else {}
    data[section] = dict(figures)
    target.write_text(json.dumps(data, indent=2, default=str))
