"""Memory: server RSS with 0, then each of `sizes` idle subscribed sockets (one subscription
per socket), on a freshly started server. A socket counts once it has received one event
(so its subscription is registered); RSS is read once the server is idle again.
Average KB = (RSS at the last size - RSS at 0) / last size; marginal KB = the difference
between the last two sizes / their difference (what one more subscription costs, without the
server's one-time growth)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.driver import Api, Swarm, System, Writer, rss_kb, settle


@dataclass
class Memory:
    rss_kb: dict[int, int]

    @property
    def average_kb(self) -> float:
        top = max(self.rss_kb)
        return (self.rss_kb[top] - self.rss_kb[0]) / top

    @property
    def marginal_kb(self) -> float:
        low, high = sorted(self.rss_kb)[-2:]
        return (self.rss_kb[high] - self.rss_kb[low]) / (high - low)


async def run(system: System, token: str, sizes: list[int], *, deflate: bool = True) -> Memory:
    api = Api(system, token)
    writer = Writer(api, recipes=1)
    swarm = Swarm(system, token, deflate)
    try:
        await writer.setup()
        for _ in range(20):
            await writer.write()
        await settle(system.pid)
        rss = {0: rss_kb(system.pid)}
        for size in sizes:
            await swarm.open(size - swarm.size)
            await swarm.mark()
            await writer.write()
            await swarm.wait(1)
            await settle(system.pid)
            rss[size] = rss_kb(system.pid)
        return Memory(rss)
    finally:
        await swarm.close()
        await api.close()
