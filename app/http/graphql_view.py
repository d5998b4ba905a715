"""Strawberry's ASGI view, wired to Larder's context, auth and GraphiQL page."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.graphiql import render_graphiql_html
from app.schema import schema
from app.schema.context import Context
from app.services.recipes import RecipeService


class LarderGraphQL(GraphQL[Context, None]):
    def __init__(self, recipes: Callable[[], RecipeService]) -> None:
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=True)
        self._recipes = recipes
        self._ide_html = render_graphiql_html()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.scope.get("state", {})
        return Context(
            request=request,
            response=response,
            principal=state.get("principal"),
            recipes=self._recipes(),
            request_id=state.get("request_id", "-"),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._ide_html)
