"""Memory: server RSS with 0, then each of `sizes` idle subscribed sockets (one subscription
per socket), on a freshly started server. A socket counts once it has received one event
(so its subscription is registered); RSS is read once the server is idle again.
Average KB = (RSS at the last size - RSS at 0) / last size; marginal KB = the difference
between the last two sizes / their difference (what one more subscription costs, without the
server's one-time growth). With `writes`, the same sockets then get that many events each and
`cpu_us_per_frame` is the server's CPU (utime+stime) over them / the frames delivered.
`pid` is the process to read (default the system's own; granian serves from a worker)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.driver import Api, Swarm, System, Writer, cpu_seconds, rss_kb, settle


@dataclass
class Memory:
    rss_kb: dict[int, int]
    cpu_us_per_frame: float | None = None

    @property
    def average_kb(self) -> float:
        top = max(self.rss_kb)
        return (self.rss_kb[top] - self.rss_kb[0]) / top

    @property
    def marginal_kb(self) -> float:
        low, high = sorted(self.rss_kb)[-2:]
        return (self.rss_kb[high] - self.rss_kb[low]) / (high - low)


async def run(
    system: System,
    token: str,
    sizes: list[int],
    *,
    viewers: Sequence[str],
    deflate: bool = True,
    writes: int = 0,
    pid: int | None = None,
) -> Memory:
    server = system.pid if pid is None else pid
    api = Api(system, token)
    writer = Writer(api, recipes=1)
    swarm = Swarm(system, viewers, deflate)
    try:
        await writer.setup()
        for _ in range(20):
            await writer.write()
        await settle(server)
        rss = {0: rss_kb(server)}
        for size in sizes:
            await swarm.open(size - swarm.size)
            await swarm.mark()
            await writer.write()
            await swarm.wait(1)
            await settle(server)
            rss[size] = rss_kb(server)
        found = Memory(rss)
        if writes:
            await swarm.mark()
            before = cpu_seconds(server)
            for _ in range(writes):
                await writer.write()
            frames = (await swarm.wait(writes))["received"]
            await settle(server)
            found.cpu_us_per_frame = (cpu_seconds(server) - before) / max(1, frames) * 1e6
        return found
    finally:
        await swarm.close()
        await api.close()
