"""Real `python -m app serve` processes for the multi-process tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

# Both must appear: the socket is bound, and the database answered (indexes, change feed;
# once per worker).
BOUND, READY = "Uvicorn running on", "ready (database"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Larder's settings that would leak into a child
    (`make test` may run with MONGODB_URI set, say), plus `extra`."""
    prefixes = ("JWT_", "MONGODB_", "APP_ENV", "DATA_DIR", "WS_", "LOG_", "GRAPHQL_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """A server process; `start()` returns once uvicorn reports startup complete (with
    `workers`: once every worker reached the database)."""

    def __init__(self, env: dict[str, str], cwd: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.env = clean_env(**env)
        self.cwd = cwd
        self.workers = workers
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self._ready = threading.Event()
        self.process: subprocess.Popen[str] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)]
            + (["--workers", str(self.workers)] if self.workers > 1 else []),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader.start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines[-30:]))
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()
            if self._matching(BOUND) and len(self._matching(READY)) >= self.workers:
                self._ready.set()
        self._ready.set()

    def wait_for_line(self, marker: str, timeout: float = 30, count: int = 1) -> str:
        """The `count`th stderr line containing `marker`, waiting for it to be printed."""

        def found() -> str | None:
            return next(
                (line for n, line in enumerate(self._matching(marker), 1) if n == count), None
            )

        with self._new_line:
            if not self._new_line.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"no line with {marker!r}:\n" + "".join(self.lines[-30:]))
            line = found()
            assert line is not None
            return line

    def _matching(self, marker: str) -> list[str]:
        return [line for line in self.lines if marker in line]

    def stop(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Its children (workers) may hold stderr open a moment longer: read to the end first.
        self._reader.join(10)
        if process.stderr is not None and not self._reader.is_alive():
            process.stderr.close()
        return process.returncode
