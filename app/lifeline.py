"""Child processes that must not outlive `serve` (the embedded database, the workers)."""

from __future__ import annotations

import ctypes
import signal

try:  # resolved at import, not in a forked child (which must only make the one call)
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send this process `sig` when its parent dies without stopping
    it (kill -9). Safe in a forked child: one prctl call, no locks, no imports."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(_PR_SET_PDEATHSIG, sig)


def killed_with_parent() -> None:
    """`die_with_parent(SIGKILL)`, for the embedded database. Once a daemon outlived its
    killed server, still serving and holding the data directory, and exited at once on a
    later SIGTERM (likely: its main thread blocks in `Event.wait()` and the parent-death
    SIGTERM reached another thread, so its Python handler never ran).
    SIGKILL needs no handler, and is safe for it: it fsyncs every commit and recovers on the
    next start (tests/test_crash.py)."""
    die_with_parent(signal.SIGKILL)
