"""Opaque keyset cursors: a position in (updated_at desc, id desc) order."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from app.services.errors import BadInput


def encode_cursor(updated_at: datetime, recipe_id: str) -> str:
    millis = int(updated_at.timestamp() * 1000)
    raw = json.dumps([millis, recipe_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        millis, recipe_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(millis, int) or not isinstance(recipe_id, str):
            raise ValueError("cursor fields")
        return datetime.fromtimestamp(millis / 1000, tz=UTC), recipe_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadInput.single("after", "is not a cursor returned by this server") from exc
