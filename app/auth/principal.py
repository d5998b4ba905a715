"""The authenticated caller, as established by a verified token."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    roles: tuple[str, ...] = ()
    expires_at: float | None = None  # the token's `exp`, seconds since the epoch

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles
