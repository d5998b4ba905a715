"""The per-operation context every resolver receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as _Info

from app.auth.principal import Principal
from app.metrics import Metrics
from app.ratelimit import TokenBuckets, retry_after_header
from app.realtime.hub import Hub
from app.services.errors import DomainError
from app.services.recipes import RecipeService
from app.services.sync import SyncService


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Too many changes; retry in {retry_after:.1f} s")
        self.retry_after = retry_after

    def extensions(self) -> dict[str, object]:
        return {"code": self.code, "retryAfter": round(self.retry_after, 3)}


@dataclass(frozen=True, slots=True)
class AppServices:
    """What the running app offers resolvers (built once per process)."""

    recipes: RecipeService
    sync: SyncService
    hub: Hub
    metrics: Metrics
    mutation_limits: TokenBuckets
    authenticate: Callable[[str], Awaitable[Principal]]


@dataclass(slots=True)
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    principal: Principal | None
    request_id: str
    services: AppServices
    connection_params: dict[str, Any] | None = None

    @property
    def recipes(self) -> RecipeService:
        return self.services.recipes

    @property
    def sync(self) -> SyncService:
        return self.services.sync

    @property
    def hub(self) -> Hub:
        return self.services.hub

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    def viewer(self) -> Principal:
        """The signed-in principal. HTTP and WebSocket entry points reject anonymous callers,
        so a missing principal here is a server bug, not a client error."""
        if self.principal is None:
            raise RuntimeError("operation reached a resolver without an authenticated principal")
        return self.principal

    def guard_mutation(self) -> Principal:
        """The viewer, after spending one token of its mutation rate limit."""
        viewer = self.viewer()
        wait = self.services.mutation_limits.take(viewer.id)
        if wait is not None:
            self.metrics.rate_limited.labels("mutation").inc()
            if isinstance(self.response, Response):
                self.response.status_code = 429
                self.response.headers["Retry-After"] = retry_after_header(wait)
            raise RateLimited(wait)
        return viewer

    def conflict(self, operation: str, count: int = 1) -> None:
        if count:
            self.metrics.version_conflicts.labels(operation).inc(count)


Info = _Info[Context, None]
