"""Fan-out: N WebSocket subscribers to recipeChanged (one per socket, each its own user, in
child processes), writes of public recipes at a steady rate; then saturation, stepping the
write rate up.

Latency = arrival - the send time in the written title; missed = writes x subscribers -
events received. Loop lag: the server runs as a subprocess and exposes nothing new, so it is
measured from the client side: GET /healthz every 50 ms during the steady phase (its p99 is
how long a trivial request waited behind the fan-out). Saturation: the highest delivered
events/s of a step whose p99 stayed under 1 s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.driver import Api, Swarm, System, Writer, percentile, probe, settle

SATURATION_P99 = 1.0


@dataclass
class Fanout:
    subscribers: int
    writes: int
    p50_ms: float
    p99_ms: float
    missed: int
    lag_p99_ms: float
    steps: list[tuple[float, float, float, int]] = field(
        default_factory=list
    )  # rate, ev/s, p99, missed

    @property
    def saturation(self) -> float | None:
        ok = [events for _, events, p99, _ in self.steps if p99 < SATURATION_P99 * 1000]
        return max(ok, default=None)


async def run(
    system: System,
    token: str,
    viewers: Sequence[str],
    *,
    subscribers: int,
    rate: float,
    seconds: float,
    steps: list[float],
    step_seconds: float,
    deflate: bool = True,
) -> Fanout:
    api = Api(system, token)
    writer = Writer(api)
    swarm = Swarm(system, viewers, deflate)
    try:
        await writer.setup()
        await swarm.open(subscribers)
        await swarm.mark()  # warm the path: a few writes reach everyone
        await writer.paced(rate, 5)
        await swarm.wait(5)
        await settle(system.pid)

        await swarm.mark()
        stop = asyncio.Event()
        lags = asyncio.create_task(probe(system.url, stop))
        count = int(rate * seconds)
        await writer.paced(rate, count)
        got = await swarm.wait(count)
        stop.set()
        if got["errors"]:
            print(f"{system.name}: unexpected messages: {got['errors']}", file=sys.stderr)
        latencies: list[float] = got["latencies"]
        result = Fanout(
            subscribers,
            count,
            percentile(latencies, 50) * 1000,
            percentile(latencies, 99) * 1000,
            count * subscribers - got["received"],
            percentile(await lags, 99) * 1000,
        )
        for step_rate in steps:
            await settle(system.pid)
            await swarm.mark()
            count = int(step_rate * step_seconds)
            started = time.time()
            await writer.paced(step_rate, count)
            got = await swarm.wait(count, quiet=3.0)
            p99 = percentile(got["latencies"], 99) * 1000
            events = got["received"] / max(got["last"] - started, 1e-9)
            result.steps.append((step_rate, events, p99, count * subscribers - got["received"]))
            if p99 >= SATURATION_P99 * 1000:
                break
        return result
    finally:
        await swarm.close()
        await api.close()
