"""The per-operation context every resolver receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as _Info

from app.auth.principal import Principal
from app.realtime.hub import Hub
from app.services.recipes import RecipeService
from app.services.sync import SyncService


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    principal: Principal | None
    recipes: RecipeService
    request_id: str
    hub: Hub
    sync: SyncService
    authenticate: Callable[[str], Principal]
    connection_params: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def viewer(self) -> Principal:
        """The signed-in principal. HTTP and WebSocket entry points reject anonymous callers,
        so a missing principal here is a server bug, not a client error."""
        if self.principal is None:
            raise RuntimeError("operation reached a resolver without an authenticated principal")
        return self.principal


Info = _Info[Context, None]
