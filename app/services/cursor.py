"""Opaque keyset cursors: a position in recipes() order, (stamp desc, id desc).

The stamp is a float (ms since the epoch, unique per write, see writes.py) and round-trips
exactly through JSON. A cursor from before the order was the stamp holds whole ms of
`updated_at`; it decodes to the same number, a position at most 1 ms off (docs/architecture.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from app.services.errors import BadInput


def encode_cursor(stamp: float, recipe_id: str) -> str:
    raw = json.dumps([stamp, recipe_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, recipe_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if (
            isinstance(stamp, bool)
            or not isinstance(stamp, int | float)
            or not math.isfinite(stamp)
            or not isinstance(recipe_id, str)
        ):
            raise ValueError("cursor fields")
        return float(stamp), recipe_id
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadInput.single("after", "is not a cursor returned by this server") from exc
