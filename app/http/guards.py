"""Request guards around the GraphQL endpoint: readiness, body size, time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def graphql_error(status: int, code: str, message: str, **extensions: object) -> JSONResponse:
    return JSONResponse(
        {
            "data": None,
            "errors": [{"message": message, "extensions": {"code": code, **extensions}}],
        },
        status_code=status,
    )


class ReadyGate:
    """Until the database is reachable, answer at once (503 / close 1013) instead of hanging."""

    def __init__(self, app: ASGIApp, is_ready: Callable[[], bool]) -> None:
        self.app = app
        self.is_ready = is_ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.is_ready() or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Accept, then close with 1013 so clients see a retryable code (a close before
            # the accept reaches them as an HTTP 403 to the upgrade).
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send(
                    {
                        "type": "websocket.close",
                        "code": 1013,
                        "reason": "Database unavailable; try again shortly",
                    }
                )
            return
        response = graphql_error(
            503, "SERVICE_UNAVAILABLE", "The database is unavailable; retry shortly"
        )
        response.headers["Retry-After"] = "2"
        await response(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = graphql_error(
            413, "PAYLOAD_TOO_LARGE", f"Request body is larger than {self.max_bytes} bytes"
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        tracked = _TrackedSend(send)
        try:
            await self.app(scope, counting_receive, tracked)
        except _TooLarge:
            if not tracked.started:
                await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


class _TrackedSend:
    """`send`, remembering whether the response has started (then it cannot be replaced)."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class TimeLimit:
    """Bound the time of one HTTP GraphQL request; answer 504 with code TIMEOUT if exceeded."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = _TrackedSend(send)
        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracked)
        except TimeoutError:
            if not tracked.started:
                response = graphql_error(
                    504, "TIMEOUT", f"The operation took longer than {self.seconds:g} s"
                )
                await response(scope, receive, send)
