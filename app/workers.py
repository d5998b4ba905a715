"""`serve --workers N`: N full Larder instances accepting on one socket, and their supervisor.

The parent (`serve`) makes the development key and token and starts the embedded database,
once; here it binds the socket, once, and starts N worker processes (spawned: a fresh
interpreter each, with its own event loop, change stream and writer lease) that all accept on
it. A worker killed by a signal (kill -9, the OOM killer) or that exits by itself is replaced,
the others serving meanwhile; one that fails (exit status > 0: it could not start, or a bug)
stops them all, so that the service manager restarts `serve` with its own backoff rather than
this loop spinning. On SIGTERM or SIGINT
every worker gets SIGTERM (each closes its WebSockets with 1001 and finishes its requests), and
`serve` stops the embedded database only after all have exited. Workers get SIGTERM from the
kernel if the parent is killed (kill -9), like the embedded database.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from types import FrameType

import uvicorn

from app.lifeline import die_with_parent

log = logging.getLogger("larder.workers")

Instance = Callable[[list[socket.socket]], None]
STOP_TIMEOUT = 25.0  # a worker's shutdown: 10 s for requests, then its lifespan
_spawn = multiprocessing.get_context("spawn")


def _worker(run: Instance, sock: socket.socket, parent: int) -> None:
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        return
    run([sock])


def _bind(host: str, port: int) -> socket.socket:
    """uvicorn's own bind (SO_REUSEADDR, IPv6 when the host says so, the `Uvicorn running
    on` line; the app named is never loaded here); a port in use exits with status 3."""
    config = uvicorn.Config(app="app.main:create_app", host=host, port=port, log_config=None)
    return config.bind_socket()


def supervise(run: Instance, host: str, port: int, count: int) -> int:
    """Run `count` workers, each `run(sockets)`, until SIGTERM/SIGINT; the exit status."""
    sock = _bind(host, port)
    parent = os.getpid()
    stopping: list[int] = []

    def start() -> SpawnProcess:
        process = _spawn.Process(target=_worker, args=(run, sock, parent), name="larder-worker")
        process.start()
        return process

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    # A signal writes to `wake`, which ends the wait below; the handler only records it.
    wake, wake_writer = socket.socketpair()
    wake.setblocking(False)
    wake_writer.setblocking(False)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous_fd = signal.set_wakeup_fd(wake_writer.fileno())
    workers: list[SpawnProcess] = []
    status = 0
    try:
        workers = [start() for _ in range(count)]
        log.info("started %d workers", count, extra={"pids": [p.pid for p in workers]})
        while not stopping:
            wait([wake, *(process.sentinel for process in workers)])
            while _drain(wake):
                pass
            for index, process in enumerate(workers):
                code = process.exitcode
                if stopping or code is None:
                    continue
                if code > 0:
                    log.error("worker %s failed (status %s): stopping", process.pid, code)
                    status = 1
                    stopping.append(0)
                    break
                how = f"was killed by signal {-code}" if code < 0 else "exited"
                log.error("worker %s %s: starting another", process.pid, how)
                workers[index] = start()
    finally:
        _stop_all(workers)
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for s in (wake, wake_writer, sock):
            s.close()
    return status


def _drain(wake: socket.socket) -> bool:
    try:
        return bool(wake.recv(64))
    except BlockingIOError:
        return False


def _stop_all(workers: list[SpawnProcess]) -> None:
    for process in workers:
        if process.exitcode is None and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            log.error("worker %s did not stop in time: killing it", process.pid)
            process.kill()
            process.join()
    log.info("all workers stopped")
