"""Server time, at the millisecond precision MongoDB stores."""

from __future__ import annotations

from datetime import UTC, datetime


def now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
