"""`make bench`: Larder vs the Apollo Server peer vs bare pymongo, one run, one table.

Table of contents (each scenario is a short file; the machinery is bench/driver.py):
  1. writes   bench/writes.py   8 HTTP clients x create-then-4-updates (bare: pymongo CAS)
  2. fan-out  bench/fanout.py   N subscribers at 10 writes/s, then saturation steps
  3. memory   bench/memory.py   server RSS at 0 / half / all idle subscribed sockets
  4. sync     bench/sync.py     initial pullRecipe of N recipes (Larder) vs pymongo pages
All three columns share one SecantusDB daemon (app.embedded, --sync-on-commit), each with its
own database name; the peer and Larder run one after the other, each warmed up first.

  python -m bench.run [--quick] [--only writes,fanout,memory,sync]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fanout, memory, sync, writes
from bench.driver import (
    REPO,
    Bench,
    System,
    bench_session,
    fmt,
    install_peer,
    raise_open_files,
    table,
)

SCENARIOS = ("writes", "fanout", "memory", "sync")
PULL_RATIO_BEFORE = 0.66  # pullRecipe / pymongo at batch 500 in the last run before issue 9


@dataclasses.dataclass(frozen=True)
class Sizes:
    clients: int = 8
    warmup_loops: int = 60  # per client: 8 x 60 x 5 = 2,400 warm-up upserts
    loops: int = 60
    subscribers: int = 1000
    rate: float = 10.0
    seconds: float = 20.0
    steps: tuple[float, ...] = (10, 20, 30, 40, 60, 80, 120, 160)
    step_seconds: float = 8.0
    idle: tuple[int, ...] = (500, 1000)
    recipes: int = 10_000
    batch: int = 500


QUICK = Sizes(
    warmup_loops=10,
    loops=10,
    subscribers=100,
    seconds=5,
    steps=(10, 40, 160),
    step_seconds=4,
    idle=(100, 200),
    recipes=1000,
)


async def measure(
    bench: Bench, sizes: Sizes, only: set[str], deflate: bool
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {"bare": {}, "peer": {}, "larder": {}}
    if "writes" in only:
        progress("bare pymongo", "writes")
        found["bare"]["writes"] = await writes.bare(
            bench, sizes.clients, sizes.warmup_loops, sizes.loops
        )
    peer = install_peer()
    if isinstance(peer, str):
        found["peer"]["missing"] = peer
    starts: dict[str, Callable[[], contextlib.AbstractContextManager[System]]] = {
        "larder": bench.larder
    }
    if not isinstance(peer, str):
        starts = {"peer": lambda: bench.peer(peer), **starts}
    for key, start in starts.items():
        if only & {"writes", "fanout"}:
            with start() as system:
                progress(key, "writes (warm-up included, also before fan-out)")
                found[key]["writes"] = await writes.graphql(
                    bench, system, sizes.clients, sizes.warmup_loops, sizes.loops
                )
                if "fanout" in only:
                    progress(key, f"fan-out and saturation, {sizes.subscribers:,} subscribers")
                    found[key]["fanout"] = await fanout.run(
                        system,
                        bench.token(),
                        bench.viewer_tokens(sizes.subscribers),
                        subscribers=sizes.subscribers,
                        rate=sizes.rate,
                        seconds=sizes.seconds,
                        steps=list(sizes.steps),
                        step_seconds=sizes.step_seconds,
                        deflate=deflate,
                    )
        if "memory" in only:
            progress(key, f"memory, {sizes.idle[-1]:,} idle subscriptions")
            with start() as system:
                found[key]["memory"] = await memory.run(
                    system,
                    bench.token(),
                    list(sizes.idle),
                    viewers=bench.viewer_tokens(sizes.idle[-1]),
                    deflate=deflate,
                )
    if "sync" in only:
        progress("larder", f"initial sync of {sizes.recipes:,} recipes")
        found["larder"]["sync"] = await sync.run(bench, sizes.recipes, sizes.batch)
    return {
        key: {k: v for k, v in got.items() if k in only or k == "missing"}
        for key, got in found.items()
    }


def progress(system: str, what: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {system}: {what}", file=sys.stderr, flush=True)


Value = float | int | tuple[float, float] | None
Check = Callable[[Any, Any], bool]


def rows(found: dict[str, dict[str, Any]], sizes: Sizes) -> list[list[object]]:
    """metric | bare | peer | Larder | Larder/peer | target | met. A pair (p50, p99) is
    compared on its p99; a target naming the peer is left open when the peer did not run."""

    def line(
        label: str,
        scenario: str,
        what: Callable[[Any], Value],
        goal: str = "",
        ok: Check | None = None,
    ) -> list[object]:
        bare, peer, larder = (
            None if (got := found[c].get(scenario)) is None else what(got)
            for c in ("bare", "peer", "larder")
        )
        p, v = (x[-1] if isinstance(x, tuple) else x for x in (peer, larder))
        ratio = f"{v / p:.2f}x" if v is not None and p else None
        open_ = ok is None or v is None or (p is None and "peer" in goal)
        met = "-" if open_ or ok is None else ("met" if ok(v, p) else "NOT met")
        return [label, *(show(v) for v in (bare, peer, larder)), ratio, goal, met]

    def show(value: Value) -> str:
        return " / ".join(map(fmt, value)) if isinstance(value, tuple) else fmt(value)

    def pull(s: sync.Sync) -> tuple[float, float]:
        return s.raw_docs_per_s, s.graphql_docs_per_s

    n, idle, pulled = sizes.subscribers, sizes.idle, found["larder"].get("sync")
    pull_ratio = pulled.graphql_docs_per_s / pulled.raw_docs_per_s if pulled else None
    return [
        line("upserts/s", "writes", lambda w: w.per_second, ">= peer", lambda v, p: v >= p),
        line("upsert p50 / p99 ms", "writes", lambda w: (w.ms(50), w.ms(99))),
        line(
            "CPU ms per upsert: server",
            "writes",
            lambda w: w.cpu_ms("server"),
            "<= 2x peer",
            lambda v, p: v <= 2 * p,
        ),
        line(
            "CPU ms per upsert: database",
            "writes",
            lambda w: w.cpu_ms("database"),
            "<= 2x peer",
            lambda v, p: v <= 2 * p,
        ),
        line(
            f"fan-out, {n:,} subs at {sizes.rate:g} writes/s: p50 / p99 ms",
            "fanout",
            lambda f: (f.p50_ms, f.p99_ms),
            "p99 <= peer and <= 100 ms",
            lambda v, p: v <= min(100.0, p),
        ),
        line("fan-out: missed events", "fanout", lambda f: f.missed, "0", lambda v, p: v == 0),
        line("fan-out: /healthz wait p99 ms (loop lag)", "fanout", lambda f: f.lag_p99_ms),
        line(
            f"saturation, {n:,} subs: events/s with p99 < 1 s",
            "fanout",
            lambda f: f.saturation,
            ">= 2.5x peer",
            lambda v, p: v >= 2.5 * p,
        ),
        line(
            f"RSS per idle subscription: avg KB (0 -> {idle[-1]:,})",
            "memory",
            lambda m: m.average_kb,
        ),
        line(
            f"RSS per idle subscription: marginal KB ({idle[-2]:,} -> {idle[-1]:,})",
            "memory",
            lambda m: m.marginal_kb,
            "<= peer",
            lambda v, p: v <= p,
        ),
        [
            f"pullRecipe of {sizes.recipes:,} (batch {sizes.batch}): docs/s; bare = pymongo pages",
            *(show(v) for v in (pulled and pull(pulled)[0], None, pulled and pull(pulled)[1])),
            pull_ratio and f"{pull_ratio:.2f}x of bare",
            f">= {PULL_RATIO_BEFORE}x of bare (before)",
            "-"
            if pull_ratio is None
            else ("met" if pull_ratio >= PULL_RATIO_BEFORE else "NOT met"),
        ],
    ]


def details(found: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for key in ("peer", "larder"):
        if "missing" in found[key]:
            out.append(f"- {key}: not run ({found[key]['missing']})")
        if "fanout" in found[key]:
            steps = ", ".join(
                f"{r:g}/s -> {fmt(e)} ev/s p99 {fmt(p)} ms missed {m}"
                for r, e, p, m in found[key]["fanout"].steps
            )
            out.append(f"- {key} saturation steps: {steps}")
        if "memory" in found[key]:
            out.append(f"- {key} RSS KB by idle subscriptions: {found[key]['memory'].rss_kb}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of 1-2 minutes"
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="subscribers do not offer permessage-deflate (browsers do; it is the default)",
    )
    parser.add_argument("--subscribers", type=int, help="override the fan-out subscriber count")
    options = parser.parse_args()
    sizes = QUICK if options.quick else Sizes()
    if options.subscribers:
        sizes = dataclasses.replace(sizes, subscribers=options.subscribers)
    only = set(options.only.split(","))
    if only - set(SCENARIOS):
        parser.error(f"--only: unknown {sorted(only - set(SCENARIOS))}; known {SCENARIOS}")
    raise_open_files(4 * (max(sizes.subscribers, *sizes.idle) + 1000))
    started, load = time.monotonic(), os.getloadavg()
    with bench_session() as bench:
        found = asyncio.run(measure(bench, sizes, only, options.deflate))
    revision = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"\n## Larder vs Apollo peer vs bare pymongo ({'quick' if options.quick else 'full'} run)\n"
    )
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {revision}, {os.cpu_count()} CPUs, load "
        f"{load[0]:.2f} -> {os.getloadavg()[0]:.2f}, {time.monotonic() - started:.0f} s; "
        "one SecantusDB daemon (--sync-on-commit) for all columns; subscribers "
        f"{'offer' if options.deflate else 'do not offer'} permessage-deflate\n"
    )
    print(
        table(
            [
                "metric",
                "bare pymongo CAS",
                "Apollo peer" + (" (NOT RUN, see below)" if "missing" in found["peer"] else ""),
                "Larder",
                "Larder/peer",
                "target (issue 9)",
                "met",
            ],
            rows(found, sizes),
        )
    )
    print("\n" + "\n".join(details(found)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
