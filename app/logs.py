"""Logs on stderr: JSON lines (production) or one readable line each (development).

Never log tokens or recipe bodies.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Literal

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# uvicorn repeats its message with terminal escapes in `color_message`: noise in both formats.
_DROPPED = frozenset({"color_message"})
ACCESS_LOGGER = "larder.access"  # one record per GraphQL operation (app/schema/observe.py)

_RESET = "\033[0m"
_DIM = "\033[2m"
_LEVEL_COLOURS = {"WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[1;31m"}
_OK, _FAILED = "\033[32m", "\033[31m"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key not in _DROPPED and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`14:02:03.120  query    List             dev      OK            3.1 ms` per operation; others
    as `time LEVEL message key=value`. Colour only when `colour` (stderr is a terminal)."""

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour and code and text else text

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = self._paint(_DIM, f"{stamp}.{int(record.msecs):03d}")
        extras = _extras(record)
        if record.name == ACCESS_LOGGER and "outcome" in extras:
            line = f"{head}  {self._operation(extras)}"
        else:
            colour = _LEVEL_COLOURS.get(record.levelname, "")
            level = self._paint(colour, f"{record.levelname:<7}")
            fields = "".join(f" {key}={value}" for key, value in extras.items())
            line = f"{head}  {level} {record.getMessage()}{self._paint(_DIM, fields)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def _operation(self, extras: dict[str, Any]) -> str:
        outcome = str(extras["outcome"])
        painted = self._paint(_OK if outcome == "OK" else _FAILED, f"{outcome:<9}")
        user = extras.get("user") or "-"
        return (
            f"{extras.get('type', '?'):<8} {extras.get('operation', '?'):<16} "
            f"{user:<8} {painted} {extras.get('duration_ms', 0):>7.1f} ms"
        )


def configure(level: str = "INFO", style: Literal["json", "text"] = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if style == "text":
        colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        handler.setFormatter(TextFormatter(colour))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
