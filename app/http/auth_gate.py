"""Rejects unauthenticated GraphQL HTTP requests with 401 before any GraphQL work is done."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import Headers, QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.verifier import AuthError, TokenVerifier, bearer_token
from app.metrics import Metrics


def is_ide_request(scope: Scope) -> bool:
    """A browser asking for the GraphiQL page (no credentials needed to load the page)."""
    if scope["method"] != "GET":
        return False
    headers = Headers(scope=scope)
    return "text/html" in headers.get("accept", "") and "query" not in QueryParams(
        scope.get("query_string", b"")
    )


def unauthenticated(error: AuthError) -> JSONResponse:
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": error.message,
                    "extensions": {"code": "UNAUTHENTICATED", "reason": error.reason},
                }
            ],
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


class AuthGate:
    """Verifies `Authorization: Bearer <jwt>` and stores the principal in `scope["state"]`.

    WebSocket connections pass through: they authenticate at `connection_init`.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, metrics: Metrics) -> None:
        self.app = app
        self.verifier = verifier
        self.metrics = metrics

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and not is_ide_request(scope):
            return self._http(scope, receive, send)
        # No coroutine frame of ours stays on a WebSocket's call stack.
        return self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            token = bearer_token(Headers(scope=scope).get("authorization"))
            principal = await self.verifier.verify(token)
        except AuthError as error:
            self.metrics.auth_failures.labels(error.reason, "http").inc()
            await unauthenticated(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
