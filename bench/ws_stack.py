"""Which WebSocket stack: Larder's real app under each of uvicorn's WebSocket protocols, with
permessage-deflate accepted or declined, RSS per idle subscription at 500 and 1,000 sockets
(subscribers offer deflate, as browsers do). `python -m bench.ws_stack [--sizes 500 1000]`.
The figures behind `WS_PROTOCOL` and `WS_PER_MESSAGE_DEFLATE` (docs/performance.md)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util

from bench import memory
from bench.driver import bench_session, raise_open_files, table

PROTOCOLS = ("websockets", "websockets-sansio", "wsproto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    args = parser.parse_args()
    raise_open_files(max(args.sizes) + 256)
    rows: list[list[object]] = []
    with bench_session() as bench:
        for protocol in PROTOCOLS:
            if protocol == "wsproto" and importlib.util.find_spec("wsproto") is None:
                rows.append([protocol, "-", "not installed (pip install wsproto)", "-"])
                continue
            for deflate in (True, False):
                settings = {"WS_PROTOCOL": protocol, "WS_PER_MESSAGE_DEFLATE": str(deflate)}
                with bench.larder(f"ws_{len(rows)}", **settings) as system:
                    token = bench.token()
                    found = asyncio.run(memory.run(system, token, args.sizes, deflate=True))
                accepts = "accepted" if deflate else "declined"
                rows.append([protocol, accepts, found.average_kb, found.marginal_kb])
    print(table(["uvicorn ws=", "deflate", "avg KB/sub", "marginal KB/sub"], rows))


if __name__ == "__main__":
    main()
