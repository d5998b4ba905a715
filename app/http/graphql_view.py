"""Strawberry's ASGI view, wired to Larder's context, auth, WebSocket sessions and GraphiQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.graphiql import DISABLED_HTML
from app.http.loopback import host_header_is_loopback
from app.http.ws import LegacyWSHandler, SessionConfig, TransportWSHandler
from app.schema import LarderSchema
from app.schema.context import AppServices, Context
from app.schema.errors import shape_error
from app.schema.fanout import Fanout, Planner


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
        allowed_origins: Sequence[str] = (),
        fanout: Fanout | None = None,
        graphiql_html: str | None = None,
        signed_in_html: str | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            # Browsers send an Origin header on every WebSocket handshake and apply no CORS
            # to it: a page on another origin is accepted only when listed in CORS_ORIGINS.
            allowed_origins=allowed_origins,
        )
        self._services = services
        self.session_config = session_config
        self.fanout: Fanout | None = fanout
        self.planner = Planner(schema._schema, schema.limit_rules)
        # None: GraphiQL is off (it needs introspection); browsers get a page saying so.
        self._ide_html = graphiql_html
        # Development sign-in: the page with the dev token, only for a loopback Host.
        self._signed_in_html = signed_in_html

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
        if self._ide_html is None:
            return HTMLResponse(DISABLED_HTML, status_code=404)
        if self._signed_in_html is not None and host_header_is_loopback(
            request.headers.get("host")
        ):
            # It carries a token: keep it out of caches.
            return HTMLResponse(self._signed_in_html, headers={"Cache-Control": "no-store"})
        return HTMLResponse(self._ide_html)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            request_id = request.scope.get("state", {}).get("request_id", "-")
            result.errors = [shape_error(e, request_id) for e in result.errors]
        return process_result(result)

    async def execute_single(  # noqa: PLR0917
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, minus subscriptions: over plain HTTP they cannot work here."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as e:
            raise HTTPException(400, e.as_http_error_reason()) from e
        except InvalidOperationTypeError as e:
            if e.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(
                    400,
                    "Subscriptions need a WebSocket connection to /graphql "
                    "(graphql-transport-ws or graphql-ws)",
                ) from e
            raise HTTPException(400, e.as_http_error_reason(request_adapter.method)) from e
        except MissingQueryError as e:
            raise HTTPException(400, "No GraphQL query found in the request") from e
