"""Request guards around the GraphQL endpoint: readiness, body size, time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine when passing through: a WebSocket keeps the ASGI call stack alive
        # for its whole life, and each coroutine frame in it costs memory per connection.
        if self.is_ready() or scope["type"] not in ("http", "websocket"):
            return self.app(scope, receive, send)
        return self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
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
    """Refuse request bodies over `max_bytes` with 413, whether declared or streamed; close a
    WebSocket whose message is over `max_bytes` with 1009 (so a mutation or push over the socket
    is bounded like one over HTTP). `serve` also sets uvicorn's `ws_max_size` to the same limit,
    which refuses such a message before buffering it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket":
            guard = _BoundedSocket(receive, send, self.max_bytes)
            return self.app(scope, guard.receive, guard.send)
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
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


CLOSE_MESSAGE_TOO_BIG = 1009


class _BoundedSocket:
    """A WebSocket's receive and send with BodyLimit's bound: a message over `max_bytes`
    closes the socket with 1009 (a slotted object: its bound methods cost less per connection
    than closures over a coroutine frame)."""

    __slots__ = ("_closed", "_max_bytes", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send, max_bytes: int) -> None:
        self._receive = receive
        self._send = send
        self._max_bytes = max_bytes
        self._closed = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "websocket.receive" and self._too_large(message):
            self._closed = True
            await self._send(
                {
                    "type": "websocket.close",
                    "code": CLOSE_MESSAGE_TOO_BIG,
                    "reason": f"Message larger than {self._max_bytes} bytes",
                }
            )
            return {"type": "websocket.disconnect", "code": CLOSE_MESSAGE_TOO_BIG}
        return message

    async def send(self, message: Message) -> None:
        if not self._closed:  # after our close, the session's own goodbyes go nowhere
            await self._send(message)

    def _too_large(self, message: Message) -> bool:
        text = message.get("text")
        if text is not None:
            # A character is 1-4 bytes in UTF-8: encode only when the count cannot decide.
            if len(text) * 4 <= self._max_bytes:
                return False
            return len(text) > self._max_bytes or len(text.encode()) > self._max_bytes
        return len(message.get("bytes") or b"") > self._max_bytes


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

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
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
