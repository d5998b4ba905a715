"""The application factory: `create_app(settings)` wires database, auth and GraphQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app.auth.jwks import RemoteJwks
from app.auth.principal import Principal
from app.auth.verifier import ConfigurationError, TokenVerifier, bearer_token
from app.db import init_models, make_client, ping
from app.graphiql import STATIC_DIR, STATIC_URL_PREFIX, DevSignIn, render_graphiql_html
from app.http.auth_gate import AuthGate
from app.http.graphql_view import LarderGraphQL
from app.http.guards import BodyLimit, ReadyGate, TimeLimit
from app.http.json_errors import JsonErrors
from app.http.request_id import RequestIdMiddleware
from app.http.ws import ConnectionLimiter, SessionConfig
from app.metrics import Metrics, counter, gauge
from app.ratelimit import TokenBuckets
from app.realtime import ChangeFeed, Hub
from app.schema import QueryLimits, build_schema
from app.schema.context import AppServices
from app.schema.fanout import Fanout
from app.services.adopt import adopt_foreign_writes
from app.services.lease import WriterLease
from app.services.migrate import add_search_words
from app.services.recipes import RecipeService
from app.services.sync import SyncService
from app.services.writes import StampedWriter
from app.settings import Settings

log = logging.getLogger("larder")


@dataclass
class Runtime:
    """What the lifespan opens and the endpoints use."""

    settings: Settings
    verifier: TokenVerifier
    hub: Hub
    metrics: Metrics
    limiter: ConnectionLimiter
    sessions: SessionConfig | None = None
    client: AsyncMongoClient[dict[str, Any]] | None = None
    services: AppServices | None = None
    feed: ChangeFeed | None = None
    lease: WriterLease | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def app_services(self) -> AppServices:
        if self.services is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        return self.services

    def is_ready(self) -> bool:
        return self.ready.is_set()

    async def authenticate(self, authorization: str) -> Principal:
        return await self.verifier.verify(bearer_token(authorization))

    def collect(self) -> Iterator[Metric]:
        yield gauge("larder_ready", "1 once the database is reachable", self.is_ready())
        yield gauge(
            "larder_ws_connections", "Authenticated WebSocket connections open", self.limiter.total
        )
        yield gauge(
            "larder_subscriptions",
            "Active subscriptions on this process",
            self.hub.subscriber_count,
        )
        yield counter(
            "larder_change_events", "Change events read from the change stream", self.hub.published
        )
        yield counter(
            "larder_events_delivered",
            "Change events delivered to subscribers",
            self.hub.stats.delivered,
        )
        yield counter(
            "larder_events_dropped",
            "Subscriptions ended because they fell behind (their queued events were dropped)",
            self.hub.overflowed,
        )
        yield counter(
            "larder_writer_sessions_reaped",
            "Transactions of crashed or stalled instances aborted by this process",
            0 if self.lease is None else self.lease.reaped,
        )
        feed = self.feed
        yield counter(
            "larder_change_feed_restarts",
            "Times the change feed reconnected",
            0 if feed is None else feed.restarts,
        )
        yield gauge(
            "larder_change_feed_connected",
            "1 while the change stream is open",
            1 if feed is not None and feed.connected.is_set() else 0,
        )


async def purge_tombstones(sync: SyncService, interval: float) -> None:
    """Delete tombstones older than the retention, now and then (every process may run it:
    the delete is idempotent)."""
    while True:
        try:
            purged = await sync.purge_tombstones()
            if purged:
                log.info("purged old tombstones", extra={"count": purged})
        except PyMongoError as exc:
            log.warning("tombstone purge failed: %s", exc)
        await asyncio.sleep(interval)


async def connect_database(
    runtime: Runtime, database: Any, writer: StampedWriter, lease: WriterLease
) -> None:
    """Ensure indexes and open the change feed, retrying with backoff until the database
    answers; /readyz turns true (and requests are served) only then."""
    delay = 0.25
    while True:
        try:
            await init_models(runtime.client, database.name)  # type: ignore[arg-type]
            assert runtime.feed is not None
            await runtime.feed.start()
            break
        except PyMongoError as exc:
            log.error("database unreachable, retrying in %.1f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    services = runtime.app_services()
    runtime.tasks += [
        asyncio.create_task(
            purge_tombstones(
                services.sync, runtime.settings.tombstone_purge_interval.total_seconds()
            )
        ),
        asyncio.create_task(adopt_foreign_writes(runtime.hub, writer)),
        asyncio.create_task(lease.run()),
    ]
    # After the lease task: the upgrade writes, and our writer session must stay announced.
    try:
        await add_search_words(database.get_collection("recipes"), writer)
    except PyMongoError as exc:
        log.warning("could not add search words to older recipes (next start retries): %s", exc)
    runtime.ready.set()
    log.info("larder %s ready (database %s)", __version__, database.name)


GRAPHQL_PATH = "/graphql"


class LarderApp(Starlette):
    """Starlette, except that a WebSocket to /graphql goes straight to its handler chain.

    A WebSocket keeps its ASGI call stack alive for as long as it is open, and Starlette's
    layers (error and exception middleware, router, route) add nothing for this one (no
    exception handler of theirs applies to it: errors reach the server either way) while
    holding ~3 KB of frames and closures per idle connection."""

    graphql_socket: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.graphql_socket is not None
            and scope["type"] == "websocket"
            and _route_path(scope) == GRAPHQL_PATH
        ):
            scope["app"] = self
            await self.graphql_socket(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the root path, as Starlette's router matches it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def create_app(
    settings: Settings,
    *,
    verifier: TokenVerifier | None = None,
    dev_sign_in: DevSignIn | None = None,
) -> LarderApp:
    """Build the ASGI app. Raises ConfigurationError when it could not work safely.

    `dev_sign_in` (development only) puts that token into the GraphiQL page.
    """
    if dev_sign_in is not None and settings.is_production:
        raise ConfigurationError("development sign-in is never offered in production")
    if verifier is None:
        verifier = TokenVerifier.from_settings(settings)
    uri = settings.mongodb_uri
    if not uri:
        raise ConfigurationError(
            "MONGODB_URI is not set (`python -m app serve` starts an "
            "embedded database when it is unset)"
        )
    metrics = Metrics()
    runtime = Runtime(
        settings=settings,
        verifier=verifier,
        hub=Hub(queue_limit=settings.ws_subscriber_queue),
        metrics=metrics,
        limiter=ConnectionLimiter(settings.ws_max_connections_per_user),
    )
    metrics.watch(runtime.collect)
    runtime.sessions = SessionConfig(
        verifier,
        runtime.limiter,
        settings.ws_keepalive_seconds,
        TokenBuckets(
            settings.rate_limit_ws_connects_per_second, settings.rate_limit_ws_connects_burst
        ),
        metrics,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = runtime.client = make_client(uri, settings.mongodb_timeout_seconds)
        database = client.get_database(settings.mongodb_db)
        recipes = database.get_collection("recipes")
        lease = runtime.lease = WriterLease(database.get_collection("sync_writers"))
        writer = StampedWriter(recipes, database.get_collection("sync_clock"), lease)
        runtime.services = AppServices(
            recipes=RecipeService(recipes, writer),
            sync=SyncService(
                recipes, writer, settings.tombstone_retention, max_push_rows=settings.max_push_rows
            ),
            hub=runtime.hub,
            metrics=metrics,
            mutation_limits=TokenBuckets(
                settings.rate_limit_mutations_per_second, settings.rate_limit_mutations_burst
            ),
            authenticate=runtime.authenticate,
        )
        runtime.feed = ChangeFeed(recipes, runtime.hub, observe_lag=metrics.feed_lag.observe)
        if isinstance(verifier.keys, RemoteJwks):
            await verifier.keys.refresh()
        connecting = asyncio.create_task(connect_database(runtime, database, writer, lease))
        try:
            yield
        finally:
            for task in (connecting, *runtime.tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.feed.stop()
            with contextlib.suppress(PyMongoError):
                await writer.close_session()
            with contextlib.suppress(PyMongoError):
                await lease.release()
            await client.close()

    async def healthz(request: Request) -> JSONResponse:
        # The pid tells apart the workers of `serve --workers N` behind one port.
        return JSONResponse({"status": "ok", "version": __version__, "pid": os.getpid()})

    async def readyz(request: Request) -> JSONResponse:
        ready = runtime.is_ready() and runtime.client is not None and await ping(runtime.client)
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    schema = build_schema(
        QueryLimits(
            max_depth=settings.max_query_depth,
            max_tokens=settings.max_query_tokens,
            max_aliases=settings.max_query_aliases,
            introspection=settings.introspection_enabled,
        )
    )
    view = LarderGraphQL(
        schema,
        runtime.app_services,
        runtime.sessions,
        connection_init_timeout=settings.ws_connection_init_timeout_seconds,
        max_subscriptions_per_connection=settings.ws_max_subscriptions_per_connection,
        allowed_origins=settings.cors_origin_list,
        fanout=Fanout(runtime.hub, schema._schema) if settings.ws_grouped_fanout else None,
        graphiql_html=render_graphiql_html() if settings.introspection_enabled else None,
        signed_in_html=(
            render_graphiql_html(sign_in=dev_sign_in)
            if dev_sign_in is not None and settings.introspection_enabled
            else None
        ),
    )
    graphql = ReadyGate(
        BodyLimit(
            AuthGate(
                JsonErrors(TimeLimit(view, settings.operation_timeout_seconds)),
                verifier,
                metrics,
            ),
            settings.max_body_bytes,
        ),
        runtime.is_ready,
    )
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.cors_origin_list:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id", "retry-after"],
            )
        )
    app = LarderApp(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route(GRAPHQL_PATH, graphql, methods=["GET", "POST"]),
            WebSocketRoute(GRAPHQL_PATH, graphql),
            Mount(STATIC_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphiql"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    # The WebSocket shortcut keeps the middleware that acts on WebSockets: the request id
    # (CORS applies to HTTP only).
    app.graphql_socket = RequestIdMiddleware(graphql)
    app.state.runtime = runtime
    app.state.settings = settings
    return app
