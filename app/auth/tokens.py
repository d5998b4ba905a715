"""Minting tokens with a private key: for the CLI, the development banner and tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from app.auth.keys import algorithm_for_private


def mint_token(
    private_key: PrivateKeyTypes,
    *,
    sub: str,
    roles: Sequence[str] = (),
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    kid: str | None = None,
    algorithm: str | None = None,
    roles_claim: str = "roles",
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        roles_claim: list(roles),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    if extra:
        claims.update(extra)
    headers = {"kid": kid} if kid else None
    return jwt.encode(
        claims,
        private_key,  # type: ignore[arg-type]
        algorithm=algorithm or algorithm_for_private(private_key),
        headers=headers,
    )


def parse_ttl(text: str) -> int:
    """`90`, `90s`, `15m`, `1h`, `7d` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text and text[-1] in units:
        value, unit = text[:-1], units[text[-1]]
    else:
        value, unit = text, 1
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"invalid TTL {text!r}: use e.g. 3600, 30m, 1h or 7d")
    return int(value) * unit
