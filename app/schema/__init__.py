"""The Strawberry schema: the public GraphQL contract (exported to schema.graphql)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.printer import print_schema
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.schema.errors import SafeParserCache, ShapeErrors
from app.schema.introspection import NoIntrospection
from app.schema.mutations import Mutation
from app.schema.observe import ObserveOperations
from app.schema.queries import Query
from app.schema.subscriptions import Subscription
from app.schema.sync import SyncMutation, SyncQuery, SyncSubscription


class LarderSchema(strawberry.Schema):
    limit_rules: tuple[type[ASTValidationRule], ...] = ()

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Client errors are answers, not incidents: ShapeErrors logs the unexpected ones."""


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int = 12
    max_tokens: int = 2_000
    max_aliases: int = 30
    introspection: bool = True


class LimitRules(SchemaExtension):
    """Adds the depth and alias limit rules (and NoIntrospection when it is off). The rule
    classes are built once per schema: Strawberry's limiter extensions build new ones per
    request, which defeats ValidationCache (its key includes the rules) and re-validates
    every request."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...]) -> None:
        self.rules = rules

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = (*context.validation_rules, *self.rules)
        yield


def build_schema(limits: QueryLimits = QueryLimits()) -> LarderSchema:
    rules = (
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
        *(() if limits.introspection else (NoIntrospection,)),
    )
    schema = LarderSchema(
        query=merge_types("Query", (Query, SyncQuery)),
        mutation=merge_types("Mutation", (Mutation, SyncMutation)),
        subscription=merge_types("Subscription", (Subscription, SyncSubscription)),
        extensions=[
            ObserveOperations,
            ShapeErrors,
            partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
            # Clients send the same few operations over and over: parse and validate once.
            SafeParserCache,
            partial(LimitRules, rules=rules),
            ValidationCache,
        ],
    )
    schema.limit_rules = rules
    return schema


def schema_sdl() -> str:
    return print_schema(build_schema()) + "\n"
