"""Which WebSocket stack: Larder's real app under each of uvicorn's WebSocket protocols, with
permessage-deflate accepted or declined, and under hypercorn and granian when installed (for
the measurement only: `pip install hypercorn granian`); RSS per idle subscription at 500 and
1,000 sockets (subscribers offer deflate, as browsers do), then server CPU per delivered frame
over 30 events to every socket. `python -m bench.ws_stack [--sizes 500 1000] [--writes 30]`.
The figures behind `WS_PROTOCOL` and `WS_PER_MESSAGE_DEFLATE` (docs/performance.md).

hypercorn (wsproto) always accepts permessage-deflate when offered, so it is measured with the
client offering it and without; granian serves from a worker process, whose RSS and CPU are
the ones read. `--serve NAME` is how this module runs those servers itself (child process).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from pathlib import Path

from starlette.applications import Starlette

from bench import memory
from bench.driver import Bench, BenchError, bench_session, raise_open_files, table

PROTOCOLS = ("websockets", "websockets-sansio", "wsproto")
OTHER_SERVERS = ("hypercorn", "granian")
SERVE = [sys.executable, "-m", "bench.ws_stack", "--serve"]


def larder_app() -> Starlette:
    """Larder's app as `serve` builds it (settings from the environment, GC tuned), for a
    server other than uvicorn."""
    from app.logs import configure
    from app.main import create_app
    from app.server import tune_gc
    from app.settings import Settings

    settings = Settings()
    configure(settings.log_level, settings.log_style)
    app = create_app(settings)
    tune_gc()
    return app


def _serve(server: str) -> None:
    """Child process: Larder's app under `server` on 127.0.0.1:$PORT until SIGTERM. (Both are
    imported by name: they are optional, installed for this measurement only.)"""
    from app.settings import Settings

    port = int(os.environ["PORT"])
    if server == "hypercorn":
        config = importlib.import_module("hypercorn.config").Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.websocket_max_message_size = Settings().max_body_bytes
        config.websocket_ping_interval = 20
        config.graceful_timeout = 10
        serve = importlib.import_module("hypercorn.asyncio").serve
        importlib.import_module("uvloop").run(serve(larder_app(), config))
        return
    importlib.import_module("granian").Granian(
        "bench.ws_stack:larder_app",
        address="127.0.0.1",
        port=port,
        interface="asgi",
        factory=True,
        workers=1,
        loop="uvloop",
        websockets=True,
        log_enabled=False,
    ).serve()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _measure(
    bench: Bench, db_name: str, server: str, args: argparse.Namespace, offer: bool, **env: str
) -> memory.Memory:
    """`server`: one of OTHER_SERVERS, else `serve` (uvicorn) with `env`."""
    cmd = [*SERVE, server] if server in OTHER_SERVERS else None
    with bench.larder(db_name, cmd=cmd, **env) as system:
        pid = None
        if server == "granian":  # the sockets are held by its worker
            workers = _children(system.pid)
            if len(workers) != 1:
                raise BenchError(f"granian: expected one worker process, found {workers}")
            pid = workers[0]
        token = bench.token()
        return asyncio.run(
            memory.run(
                system,
                token,
                args.sizes,
                viewers=bench.viewer_tokens(max(args.sizes)),
                deflate=offer,
                writes=args.writes,
                pid=pid,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--writes", type=int, default=30)
    parser.add_argument("--serve", choices=OTHER_SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    raise_open_files(max(args.sizes) + 256)
    rows: list[list[object]] = []

    def add(server: str, deflate: str, found: memory.Memory) -> None:
        rows.append([server, deflate, found.average_kb, found.marginal_kb, found.cpu_us_per_frame])

    with bench_session() as bench:
        for protocol in PROTOCOLS:
            if protocol == "wsproto" and importlib.util.find_spec("wsproto") is None:
                rows.append([protocol, "-", "not installed (pip install wsproto)", "-", "-"])
                continue
            for accept in (True, False):
                env = {"WS_PROTOCOL": protocol, "WS_PER_MESSAGE_DEFLATE": str(accept)}
                found = _measure(bench, f"ws_{len(rows)}", protocol, args, True, **env)
                add(f"uvicorn {protocol}", "accepted" if accept else "declined", found)
        # hypercorn accepts deflate whenever it is offered; granian does not implement it.
        for server, offer, deflate in (
            ("hypercorn", True, "accepted"),
            ("hypercorn", False, "not offered"),
            ("granian", True, "declined"),
        ):
            if importlib.util.find_spec(server) is None:
                rows.append([server, "-", f"not installed (pip install {server})", "-", "-"])
                continue
            add(server, deflate, _measure(bench, f"ws_{len(rows)}", server, args, offer))
    headers = ["server", "deflate", "avg KB/sub", "marginal KB/sub", "server us/frame"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
