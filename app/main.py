"""The application factory: `create_app(settings)` wires database, auth and GraphQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from app import __version__
from app.auth.verifier import ConfigurationError, TokenVerifier
from app.db import init_models, make_client, ping
from app.graphiql import STATIC_DIR, STATIC_URL_PREFIX
from app.http.auth_gate import AuthGate
from app.http.graphql_view import LarderGraphQL
from app.http.request_id import RequestIdMiddleware
from app.http.ws import ConnectionLimiter, SessionConfig
from app.metrics import make_registry
from app.metrics import render as render_metrics
from app.realtime import ChangeFeed, Hub
from app.services.adopt import adopt_foreign_writes
from app.services.recipes import RecipeService
from app.services.sync import SyncService
from app.services.writes import StampedWriter
from app.settings import Settings

log = logging.getLogger("larder")


@dataclass
class Runtime:
    """What the lifespan opens and the endpoints use."""

    hub: Hub
    limiter: ConnectionLimiter
    client: AsyncMongoClient[dict[str, Any]] | None = None
    recipes: RecipeService | None = None
    sync: SyncService | None = None
    feed: ChangeFeed | None = None

    def services(self) -> tuple[RecipeService, SyncService]:
        if self.recipes is None or self.sync is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        return self.recipes, self.sync


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


def create_app(settings: Settings, *, verifier: TokenVerifier | None = None) -> Starlette:
    """Build the ASGI app. Raises ConfigurationError when it could not work safely."""
    if verifier is None:
        verifier = TokenVerifier.from_settings(settings)
    uri = settings.mongodb_uri
    if not uri:
        raise ConfigurationError(
            "MONGODB_URI is not set (`python -m app serve` starts an "
            "embedded database when it is unset)"
        )
    runtime = Runtime(
        hub=Hub(queue_limit=settings.ws_subscriber_queue),
        limiter=ConnectionLimiter(settings.ws_max_connections_per_user),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.client = make_client(uri)
        database = await init_models(runtime.client, settings.mongodb_db)
        recipes = database.get_collection("recipes")
        writer = StampedWriter(recipes, database.get_collection("sync_clock"))
        runtime.recipes = RecipeService(recipes, writer)
        runtime.sync = SyncService(recipes, writer, settings.tombstone_retention)
        runtime.feed = ChangeFeed(recipes, runtime.hub)
        await runtime.feed.start()
        background = [
            asyncio.create_task(
                purge_tombstones(runtime.sync, settings.tombstone_purge_interval.total_seconds())
            ),
            asyncio.create_task(adopt_foreign_writes(runtime.hub, writer)),
        ]
        log.info("larder %s ready (database %s)", __version__, settings.mongodb_db)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.feed.stop()
            await runtime.client.close()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    registry = make_registry(runtime)

    async def metrics(request: Request) -> Response:
        return Response(render_metrics(registry), media_type="text/plain; version=0.0.4")

    async def readyz(request: Request) -> JSONResponse:
        ready = runtime.client is not None and await ping(runtime.client)
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    view = LarderGraphQL(
        runtime.services,
        runtime.hub,
        SessionConfig(verifier, runtime.limiter, settings.ws_keepalive_seconds),
        connection_init_timeout=settings.ws_connection_init_timeout_seconds,
        max_subscriptions_per_connection=settings.ws_max_subscriptions_per_connection,
    )
    graphql = AuthGate(view, verifier)
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.cors_origin_list:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origin_list,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
            )
        )
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Mount(STATIC_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphiql"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    return app
