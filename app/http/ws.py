"""WebSocket sessions on both protocols: auth at connection_init, keep-alive, token expiry,
per-user connection limits. Subscriptions themselves are Strawberry's.

Close codes (documented in docs/protocol.md):
  4403  missing or invalid token (nothing is sent before the close)
  4429  too many open connections for this user
  1013  too many connection attempts (rate limit), or the database is not ready: retry later
  1001  the server is shutting down: reconnect (to another instance)
  4440  the token expired: reconnect with a fresh token
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Mapping
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from app.auth.principal import Principal
from app.auth.verifier import AuthError, TokenVerifier, bearer_token
from app.metrics import Metrics
from app.ratelimit import TokenBuckets, retry_after_header
from app.realtime.hub import Mailbox, SubscriptionEnded
from app.schema.context import Context
from app.schema.fanout import Fanout, Plan, Subscriber, error_entry
from app.schema.fanout_fields import prepare

log = logging.getLogger("larder.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_CONNECTIONS = 4429
CLOSE_TOKEN_EXPIRED = 4440


def authorization_from(params: Mapping[str, Any] | None, upgrade_header: str | None) -> str | None:
    """`{"authorization": ...}`, `{"headers": {"authorization": ...}}` (RxDB), any casing,
    else the upgrade request's Authorization header."""
    candidates: list[Mapping[str, Any]] = []
    if isinstance(params, Mapping):
        candidates.append(params)
        headers = params.get("headers")
        if isinstance(headers, Mapping):
            candidates.append(headers)
    for source in candidates:
        for key, value in source.items():
            if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
                return value
    return upgrade_header


class ConnectionLimiter:
    """Counts open, authenticated WebSocket connections per user (this process)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: Counter[str] = Counter()

    def acquire(self, user: str) -> bool:
        if self._open[user] >= self.per_user:
            return False
        self._open[user] += 1
        return True

    def release(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    @property
    def total(self) -> int:
        return sum(self._open.values())


class SessionConfig:
    """What every WebSocket session of the app shares."""

    def __init__(
        self,
        verifier: TokenVerifier,
        limiter: ConnectionLimiter,
        keepalive_seconds: float,
        connect_limits: TokenBuckets,
        metrics: Metrics,
    ) -> None:
        self.verifier = verifier
        self.limiter = limiter
        self.keepalive_seconds = keepalive_seconds
        self.connect_limits = connect_limits
        self.metrics = metrics
        self.sessions: set[_Session] = set()

    async def close_all(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "Server shutting down"
    ) -> None:
        """Graceful shutdown: tell every client to reconnect elsewhere."""
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.websocket.close(code, reason)


class _Session:
    """Mixed into both protocol handlers (they share `websocket`, `context`, `view`)."""

    websocket: Any
    context: Context
    view: Any
    keepalive_message: dict[str, str]
    data_type: str

    # Per connection, so kept lean: class-level defaults until a value is needed.
    _principal: Principal | None = None
    _subscribers: dict[str, Subscriber] | None = None  # fan-out subscriptions by operation id
    _timer: asyncio.TimerHandle | None = None
    _next_ping = 0.0
    _deadline: float | None = None
    _timer_task: asyncio.Task[None] | None = None  # a keep-alive or the expiry close, sending

    def _plan(self, payload: Any) -> Plan | None:
        query = payload.get("query") if isinstance(payload, Mapping) else None
        if not isinstance(query, str) or self.view.fanout is None:
            return None
        name = payload.get("operationName")
        plan: Plan | None = self.view.planner.plan(query, name if isinstance(name, str) else None)
        return plan

    async def _fail(self, op_id: str, error: dict[str, Any]) -> None:
        """End an operation with an `error` message (clients such as RxDB recover from it by
        resubscribing; a `next` carrying errors looks like data to them)."""
        raise NotImplementedError

    async def _start_fanout(self, op_id: str, plan: Plan, variables: Any) -> None:
        """The operation's task: register one subscription with the grouped fan-out. The task
        ends there; the subscriber sends from a task of its own only while it has something
        to send, and the protocol's cleanup (stop, closing socket) removes it."""
        fanout: Fanout = self.view.fanout
        try:
            key, group, classify, audience = await prepare(
                fanout.schema,
                plan,
                variables if isinstance(variables, dict) else None,
                self.context,
            )
        except GraphQLError as error:
            await self._fail(op_id, error_entry(error))
            return
        except Exception:
            log.exception("could not start a subscription")
            await self._fail(op_id, error_entry(GraphQLError("Internal server error")))
            return
        subscriber = Subscriber(
            op_id=op_id,
            key=key,
            classify=classify,
            audience=audience,
            send=self.websocket.ws.send_text,
            envelope=f'{{"id":{json.dumps(op_id)},"type":"{self.data_type}","payload":',
            mailbox=Mailbox(fanout.hub.queue_limit),
            stats=fanout.hub.stats,
            owner=self,
        )
        if self._subscribers is None:
            self._subscribers = {}
        # From here the protocol's cleanup of `op_id` removes it, even mid-`add`.
        self._subscribers[op_id] = subscriber
        await fanout.add(key, group, subscriber, replay=plan.field == "streamRecipe")
        self._started(op_id)

    def _started(self, op_id: str) -> None:
        """The fan-out subscription `op_id` runs without its operation task from now on."""

    def _acknowledged(self) -> None:
        """After connection_ack: the session keeps its principal, not the credentials it
        came with (no resolver reads `connection_params`; a token is ~0.8 KB a connection)."""
        self.context.connection_params = None

    def _release(self, op_id: str) -> Subscriber | None:
        """Forget the fan-out subscription of `op_id` (None if there is none)."""
        if self._subscribers is None:
            return None
        subscriber = self._subscribers.pop(op_id, None)
        if not self._subscribers:
            self._subscribers = None
        return subscriber

    async def _remove(self, subscriber: Subscriber) -> None:
        subscriber.stop()
        await self.view.fanout.remove(subscriber.key, subscriber)

    async def subscription_ended(self, subscriber: Subscriber, error: SubscriptionEnded) -> None:
        """The hub ended a fan-out subscription (overflow, feed reset): tell the client."""
        if self._subscribers is None or self._subscribers.get(subscriber.op_id) is not subscriber:
            return  # already stopped by the client or the closing socket
        self._release(subscriber.op_id)
        await self._remove(subscriber)
        await self._fail(subscriber.op_id, error_entry(error))

    async def _open_session(self, payload: Any) -> bool:
        config: SessionConfig = self.view.session_config
        request = self.context.request
        try:
            header = authorization_from(
                payload if isinstance(payload, Mapping) else None,
                request.headers.get("authorization"),
            )
            principal = await config.verifier.verify(bearer_token(header))
        except AuthError as error:
            config.metrics.auth_failures.labels(error.reason, "websocket").inc()
            await self.websocket.close(CLOSE_FORBIDDEN, f"Forbidden: {error.message}"[:120])
            return False
        if principal.expires_at is not None and principal.expires_at <= time.time():
            # Accepted only thanks to the clock-skew leeway: acknowledging it would just be
            # followed by an immediate 4440, so ask for a fresh token straight away.
            await self.websocket.close(CLOSE_TOKEN_EXPIRED, "Token expired")
            return False
        wait = config.connect_limits.take(principal.id)
        if wait is not None:
            config.metrics.rate_limited.labels("ws_connect").inc()
            await self.websocket.close(
                CLOSE_TRY_AGAIN_LATER,
                f"Too many connection attempts; retry in {retry_after_header(wait)} s",
            )
            return False
        if not config.limiter.acquire(principal.id):
            await self.websocket.close(
                CLOSE_TOO_MANY_CONNECTIONS,
                f"Too many connections for this user (limit {config.limiter.per_user})",
            )
            return False
        self._principal = principal
        self.context.principal = principal
        config.sessions.add(self)
        self._start_timer(config.keepalive_seconds, principal.expires_at)
        return True

    async def _close_session(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._timer_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        config: SessionConfig = self.view.session_config
        config.sessions.discard(self)
        if self._principal is not None:
            config.limiter.release(self._principal.id)
            self._principal = None

    # Keep-alives every `keepalive_seconds`, and the close at token expiry: one timer handle
    # per connection, and a task only while a keep-alive or the close is being sent (a
    # sleeping task per connection costs several times the handle).

    def _start_timer(self, interval: float, expires_at: float | None) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_ping = now + interval
        if expires_at is not None:
            self._deadline = now + expires_at - time.time()
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        wake = self._next_ping if self._deadline is None else min(self._next_ping, self._deadline)
        self._timer = loop.call_at(wake, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._principal is None:
            return  # the session closed
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._deadline is not None and now >= self._deadline:
            self._run_timer_task(self._expire())
            return
        if now >= self._next_ping:
            self._next_ping = now + self.view.session_config.keepalive_seconds
            if self._timer_task is None:  # else the last keep-alive is still being sent
                self._run_timer_task(self._ping())
        self._arm(loop)

    def _run_timer_task(self, sending: Coroutine[Any, Any, None]) -> None:
        previous = self._timer_task
        if previous is not None:
            previous.cancel()  # the expiry close goes ahead of a stuck keep-alive
        self._timer_task = asyncio.get_running_loop().create_task(sending)

    async def _ping(self) -> None:
        try:
            await self.websocket.send_json(self.keepalive_message)
        except Exception:  # the socket is gone: the protocol handler's cleanup follows
            pass
        finally:
            if self._timer_task is asyncio.current_task():
                self._timer_task = None

    async def _expire(self) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(CLOSE_TOKEN_EXPIRED, "Token expired")


class TransportWSHandler(_Session, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws (graphql-ws, Apollo Client)."""

    keepalive_message = {"type": "ping"}
    data_type = "next"

    async def handle_subscribe(self, message: Any) -> None:
        payload = message.get("payload") or {}
        plan = self._plan(payload)
        if plan is None or not self.connection_acknowledged:
            await super().handle_subscribe(message)
            return
        op_id = message["id"]
        if op_id in self.operations:
            await self.websocket.close(code=4409, reason=f"Subscriber for {op_id} already exists")
            return
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.operations) >= limit:
            await self.send_message(
                {
                    "id": op_id,
                    "type": "error",
                    "payload": [{"message": "Subscription limit reached"}],
                }
            )
            return
        operation = Operation(
            self, op_id, payload["query"], payload.get("variables"), payload.get("operationName")
        )
        operation.task = asyncio.create_task(
            self._start_fanout(op_id, plan, payload.get("variables"))
        )
        self.operations[op_id] = operation

    async def _fail(self, op_id: str, error: dict[str, Any]) -> None:
        operation: Any = self.operations.get(op_id)  # its messages are TypedDicts
        if operation is not None:
            await operation.send_operation_message(
                {"id": op_id, "type": "error", "payload": [error]}
            )

    def _started(self, op_id: str) -> None:
        operation = self.operations.get(op_id)
        if operation is not None:
            operation.task = None  # finished: no need to keep it (and its coroutine) around

    async def cleanup_operation(self, operation_id: str) -> None:
        """A `complete` from the client, or the socket closing: also ends a fan-out
        subscription (which has no operation task once started)."""
        subscriber = self._release(operation_id)
        operation = self.operations.get(operation_id)
        if operation is not None and operation.task is None:
            del self.operations[operation_id]
        else:
            await super().cleanup_operation(operation_id)
        if subscriber is not None:
            await self._remove(subscriber)

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            await self._close_session()

    async def handle_connection_init(self, message: Any) -> None:
        if not self.connection_init_received and not await self._open_session(
            message.get("payload")
        ):
            self.connection_init_received = True
            if self.connection_init_timeout_task:
                self.connection_init_timeout_task.cancel()
            return
        await super().handle_connection_init(message)
        # Strawberry cancels its init-timeout task here but keeps it (with its CancelledError
        # and traceback) for the connection's life; nothing needs it any more.
        self.connection_init_timeout_task = None
        if self.connection_acknowledged:
            self._acknowledged()


class LegacyWSHandler(_Session, BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol (subscriptions-transport-ws, older mobile clients)."""

    keepalive_message = {"type": "ka"}
    data_type = "data"

    async def handle_start(self, message: Any) -> None:
        payload = message.get("payload") or {}
        plan = self._plan(payload)
        if plan is None or not self.connection_acknowledged:
            await super().handle_start(message)
            return
        op_id = message["id"]
        if op_id in self.tasks:
            await self.cleanup_operation(op_id)
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.tasks) >= limit:
            await self.send_message(
                {"type": "error", "id": op_id, "payload": {"message": "Subscription limit reached"}}
            )
            return
        self.tasks[op_id] = asyncio.create_task(
            self._start_fanout(op_id, plan, payload.get("variables"))
        )

    async def _fail(self, op_id: str, error: dict[str, Any]) -> None:
        await self.websocket.send_json({"type": "error", "id": op_id, "payload": error})
        await self.send_message({"type": "complete", "id": op_id})
        self.tasks.pop(op_id, None)

    async def cleanup_operation(self, operation_id: str) -> None:
        """`stop`, or the socket closing: a stopped fan-out subscription is completed."""
        subscriber = self._release(operation_id)
        await super().cleanup_operation(operation_id)
        if subscriber is not None:
            await self._remove(subscriber)
            with contextlib.suppress(Exception):
                await self.send_message({"type": "complete", "id": operation_id})

    async def handle(self) -> None:
        # The legacy protocol has no init timeout of its own: give it graphql-ws's (4408).
        timeout = self.view.connection_init_wait_timeout.total_seconds()
        init_timer = asyncio.create_task(self._init_deadline(timeout))
        try:
            await super().handle()
        finally:
            init_timer.cancel()
            await self._close_session()

    async def _init_deadline(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self._principal is None:
            with contextlib.suppress(Exception):
                await self.websocket.close(4408, "Connection initialisation timeout")

    async def handle_connection_init(self, message: Any) -> None:
        if self._principal is not None:
            await self.websocket.close(4429, "Too many initialisation requests")
            return
        if await self._open_session(message.get("payload")):
            await super().handle_connection_init(message)
            if self.connection_acknowledged:
                self._acknowledged()
