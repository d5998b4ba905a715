"""Runs the embedded SecantusDB daemon as a child process (never imported: it is GPL-2.0).

Used by `python -m app serve` when MONGODB_URI is unset, and by the test fixtures. Under
`serve` it is supervised: if the daemon dies (kill -9, out of memory), it is started again on
the same port and storage, so the server's connections recover without a restart of `serve`
(every acknowledged write is on disk: `--sync-on-commit`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from app.lifeline import killed_with_parent

URI_FILE = "secantusd.uri"  # in DATA_DIR while a daemon started with in_data_dir() runs
_LISTENING = re.compile(r"secantus listening on ([\d.]+):(\d+)")
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
RESTART_BACKOFF = (0.2, 5.0)  # seconds before the first restart attempt, and at most

log = logging.getLogger("larder.embedded")


class EmbeddedDatabaseError(RuntimeError):
    pass


def _executable() -> str:
    beside = Path(sys.executable).with_name("secantusd-py")
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if found is None:
        raise EmbeddedDatabaseError(
            "secantusd-py not found: install the project (make run does) or set MONGODB_URI"
        )
    return found


@dataclass
class EmbeddedDatabase:
    """A SecantusDB daemon on 127.0.0.1. `storage` is a directory, or ':memory:'."""

    storage: str
    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    _lines: list[str] = field(default_factory=list)
    _config: Path | None = None
    _listening: bool = False
    uri_file: Path | None = None  # where to publish the URI while running
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> EmbeddedDatabase:
        """The daemon `serve` and `demo` run when MONGODB_URI is unset: data in
        DATA_DIR/db, log in DATA_DIR/secantusd.log (one process at a time per directory)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            storage=str(data_dir / "db"),
            log_path=data_dir / "secantusd.log",
            uri_file=data_dir / URI_FILE,
        )

    @staticmethod
    def published_uri(data_dir: Path) -> str | None:
        """The URI a running daemon on DATA_DIR published (it may be stale after a kill -9:
        check that it answers), so that `demo` can write while `serve` runs."""
        try:
            return (data_dir / URI_FILE).read_text().strip() or None
        except OSError:
            return None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true&retryWrites=false"

    def start(self) -> EmbeddedDatabase:
        if self.storage != ":memory:":
            Path(self.storage).mkdir(parents=True, exist_ok=True)
        # An explicit (empty) config turns off auto-discovery of stray secantusd.toml files.
        fd, config = tempfile.mkstemp(prefix="larder-secantusd-", suffix=".toml")
        os.close(fd)
        self._config = Path(config)
        self._stopping.clear()
        try:
            self._launch()
        except EmbeddedDatabaseError:
            self.stop()
            raise
        if self.uri_file is not None:
            self.uri_file.write_text(self.uri + "\n")
        return self

    def _launch(self) -> None:
        """Start the daemon on `port` (0 the first time: any free port; then the one it got,
        so that clients' connection strings stay valid) and wait until it listens."""
        assert self._config is not None
        cmd = [
            _executable(),
            "--config",
            str(self._config),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            self.storage,
            "--noop-heartbeat-seconds",
            "10",
            # Acknowledged means durable: fsync the log on every commit, so a kill -9 or a
            # power cut loses no acknowledged write (without it, measured: dozens per kill).
            *([] if self.storage == ":memory:" else ["--sync-on-commit"]),
            *self.extra_args,
        ]
        self._listening = False
        self._lines = []
        self.process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            # Safe here: the child makes one prctl call, no locks, no imports.
            preexec_fn=killed_with_parent,  # noqa: PLW1509
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.process, ready), daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT) or not self._listening:
            output = "".join(self._lines[-20:])
            raise EmbeddedDatabaseError(f"SecantusDB did not start:\n{output}")

    def supervise(self) -> EmbeddedDatabase:
        """Start the daemon again, on the same port and storage, whenever it dies until
        `stop()`; retried with backoff while it cannot start."""
        if self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._watch, name="secantusd-supervisor", daemon=True
            )
            self._supervisor.start()
        return self

    def _watch(self) -> None:
        while True:
            process = self.process
            if process is None:
                return
            while process.poll() is None:
                if self._stopping.wait(0.5):
                    return
            if self._stopping.is_set():
                return
            log.error(
                "the embedded SecantusDB exited (code %s); starting it again on port %s",
                process.returncode,
                self.port,
            )
            delay = RESTART_BACKOFF[0]
            while not self._stopping.wait(delay):
                try:
                    self._launch()
                except (EmbeddedDatabaseError, OSError) as exc:
                    log.error("could not start the embedded SecantusDB again: %s", exc)
                    failed = self.process
                    if failed is not None and failed.poll() is None:
                        failed.kill()
                    delay = min(delay * 2, RESTART_BACKOFF[1])
                    continue
                log.warning("the embedded SecantusDB is back on port %s", self.port)
                break

    def _pump(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        out = self.log_path.open("a") if self.log_path else None
        try:
            for line in process.stdout:
                if len(self._lines) < 200:
                    self._lines.append(line)
                if out:
                    out.write(line)
                    out.flush()
                match = _LISTENING.search(line)
                if match and not ready.is_set():
                    self.port = int(match.group(2))
                    self._listening = True
                    ready.set()
        finally:
            ready.set()
            if out:
                out.close()

    def stop(self) -> None:
        self._stopping.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(STARTUP_TIMEOUT + 1)  # lets a restart under way finish first
        if self.uri_file is not None and self._listening:
            self.uri_file.unlink(missing_ok=True)
        if self._config is not None:
            self._config.unlink(missing_ok=True)
            self._config = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> EmbeddedDatabase:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
