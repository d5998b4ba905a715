"""Strawberry answers some malformed HTTP requests (bad JSON, wrong content type, a mutation
over GET, no query) with plain-text 4xx bodies; clients expect GraphQL JSON errors."""

from __future__ import annotations

import json
from collections.abc import Awaitable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CODES = {400: "BAD_REQUEST", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}


class JsonErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)  # no frame of ours on a WebSocket's stack
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = b""

        async def rewriting_send(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if message["status"] >= 400 and content_type.startswith("text/plain"):
                    start = message
                    return
                await send(message)
                return
            if start is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            status = start["status"]
            payload = json.dumps(
                {
                    "data": None,
                    "errors": [
                        {
                            "message": body.decode("utf-8", "replace") or "Bad request",
                            "extensions": {"code": _CODES.get(status, "BAD_REQUEST")},
                        }
                    ],
                }
            ).encode()
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(payload))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, receive, rewriting_send)
