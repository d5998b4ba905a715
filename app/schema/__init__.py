"""The Strawberry schema: the public GraphQL contract (exported to schema.graphql)."""

from __future__ import annotations

import strawberry
from strawberry.printer import print_schema

from app.schema.errors import ShapeErrors
from app.schema.mutations import Mutation
from app.schema.queries import Query

schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=[ShapeErrors])


def schema_sdl() -> str:
    return print_schema(schema) + "\n"
