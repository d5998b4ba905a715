"""The Strawberry schema: the public GraphQL contract (exported to schema.graphql)."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.printer import print_schema
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.schema.errors import ShapeErrors
from app.schema.mutations import Mutation
from app.schema.queries import Query
from app.schema.subscriptions import Subscription
from app.schema.sync import SyncMutation, SyncQuery, SyncSubscription


class LarderSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Client errors are answers, not incidents: ShapeErrors logs the unexpected ones."""


schema = LarderSchema(
    query=merge_types("Query", (Query, SyncQuery)),
    mutation=merge_types("Mutation", (Mutation, SyncMutation)),
    subscription=merge_types("Subscription", (Subscription, SyncSubscription)),
    # Clients send the same few operations over and over: parse and validate each once.
    extensions=[ShapeErrors, ParserCache, ValidationCache],
)


def schema_sdl() -> str:
    return print_schema(schema) + "\n"
