"""A small real WebSocket GraphQL client for both subprotocols (built on `websockets`)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"


class GraphQLWS:
    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._next_id = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        protocol: str = TRANSPORT,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        ack: bool = True,
        **kwargs: Any,
    ) -> GraphQLWS:
        connection = await websockets.connect(
            url.replace("http://", "ws://") + "/graphql",
            subprotocols=[protocol],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=10,
            **kwargs,
        )
        client = cls(connection, protocol)
        await client.send({"type": "connection_init", "payload": payload or {}})
        if ack:
            message = await client.receive(skip_keepalive=True)
            assert message["type"] == "connection_ack", message
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, *, skip_keepalive: bool = True, timeout: float = 10) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), timeout)
            message: dict[str, Any] = json.loads(raw)
            if skip_keepalive and message.get("type") in ("ping", "pong", "ka"):
                continue
            return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._next_id += 1
        op_id = str(self._next_id)
        kind = "subscribe" if self.protocol == TRANSPORT else "start"
        await self.send(
            {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables or {}}}
        )
        return op_id

    async def next_data(self, timeout: float = 10) -> dict[str, Any]:
        """The next `next`/`data` payload's data (asserting it carries no errors)."""
        message = await self.receive(timeout=timeout)
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def close_code(
        self, timeout: float = 10, allow: tuple[str, ...] = ()
    ) -> tuple[int | None, str]:
        """Wait for the server to close; returns (code, reason). Fails if a message other
        than keep-alives (and the `allow`ed types) arrives first."""
        try:
            while True:
                raw = await asyncio.wait_for(self.connection.recv(), timeout)
                message = json.loads(raw)
                assert message.get("type") in ("ping", "ka", "pong", *allow), message
        except websockets.ConnectionClosed as closed:
            rcvd = closed.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, "")

    async def close(self) -> None:
        await self.connection.close()


CHANGES = """
subscription Changes($filter: RecipeChangeFilter) {
  recipeChanged(filter: $filter) {
    kind version recipe { id title version ownerId collaborators visibility deleted tags }
  }
}
"""


class StuckClient:
    """A client that subscribes and then never reads again (a frozen phone on a bad network).

    Built on websockets' sans-I/O protocol over a plain socket with a tiny receive buffer, so
    nothing reads on its behalf and TCP flow control pushes back on the server.
    """

    def __init__(self, port: int, token: str, query: str) -> None:
        import socket

        from websockets.client import ClientProtocol
        from websockets.protocol import State
        from websockets.uri import parse_uri

        self._pending: deque[bytes] = deque()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}/graphql"),
            subprotocols=[TRANSPORT],  # type: ignore[list-item]
            max_size=None,
        )
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is not State.OPEN:
            self.protocol.receive_data(self.sock.recv(65536))
            if self.protocol.handshake_exc is not None:
                raise self.protocol.handshake_exc
        self.protocol.events_received()  # the handshake response
        self._send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert self._read_message()["type"] == "connection_ack"
        self._send({"id": "slow", "type": "subscribe", "payload": {"query": query}})

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            self.sock.sendall(chunk)

    def _send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self._flush()

    def _read_message(self) -> dict[str, Any]:
        while True:
            self._pending.extend(
                data
                for event in self.protocol.events_received()
                if (data := getattr(event, "data", None)) is not None
            )
            while self._pending:
                message: dict[str, Any] = json.loads(self._pending.popleft())
                if message.get("type") not in ("ping", "pong", "ka"):
                    return message
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.protocol.receive_data(chunk)
            self._flush()  # pongs for protocol-level pings

    def read_messages(self, count: int) -> list[dict[str, Any]]:
        """Start reading again; the next `count` messages."""
        return [self._read_message() for _ in range(count)]

    def drain_until_error(self) -> dict[str, Any]:
        """Start reading again; return the first GraphQL error the subscription ended with."""
        while True:
            message = self._read_message()
            if message.get("type") == "error":
                errors = message["payload"]
            else:
                errors = (message.get("payload") or {}).get("errors")
            if errors:
                error: dict[str, Any] = errors[0]
                return error

    def close(self) -> None:
        self.sock.close()
