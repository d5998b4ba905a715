"""Strawberry's ASGI view, wired to Larder's context, auth, WebSocket sessions and GraphiQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.auth.principal import Principal
from app.auth.verifier import bearer_token
from app.graphiql import render_graphiql_html
from app.http.ws import LegacyWSHandler, SessionConfig, TransportWSHandler
from app.realtime.hub import Hub
from app.schema import schema
from app.schema.context import Context
from app.services.recipes import RecipeService
from app.services.sync import SyncService


class LarderGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self,
        services: Callable[[], tuple[RecipeService, SyncService]],
        hub: Hub,
        session_config: SessionConfig,
        *,
        connection_init_timeout: float,
        max_subscriptions_per_connection: int,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            max_subscriptions_per_connection=max_subscriptions_per_connection,
        )
        self._services = services
        self._hub = hub
        self.session_config = session_config
        self._ide_html = render_graphiql_html()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.scope.get("state", {})
        recipes, sync = self._services()
        return Context(
            request=request,
            response=response,
            principal=state.get("principal"),
            recipes=recipes,
            request_id=state.get("request_id", "-"),
            hub=self._hub,
            sync=sync,
            authenticate=self._authenticate,
        )

    def _authenticate(self, authorization: str) -> Principal:
        return self.session_config.verifier.verify(bearer_token(authorization))

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._ide_html)
