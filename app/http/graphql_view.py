"""Strawberry's ASGI view, wired to Larder's context, auth, WebSocket sessions and GraphiQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.graphiql import render_graphiql_html
from app.http.ws import LegacyWSHandler, SessionConfig, TransportWSHandler
from app.schema import LarderSchema
from app.schema.context import AppServices, Context


class LarderGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self,
        schema: LarderSchema,
        services: Callable[[], AppServices],
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
        self.session_config = session_config
        self._ide_html = render_graphiql_html()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.scope.get("state", {})
        return Context(
            request=request,
            response=response,
            principal=state.get("principal"),
            request_id=state.get("request_id", "-"),
            services=self._services(),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._ide_html)
