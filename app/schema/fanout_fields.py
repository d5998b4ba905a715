"""Turns a planned `recipeChanged` / `streamRecipe` subscription into a fan-out group key and
the subscriber's classifier (what the grouped fan-out needs from the schema layer)."""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_argument_values,
    get_variable_values,
)
from strawberry import UNSET

from app.auth.verifier import AuthError
from app.schema.context import Context
from app.schema.errors import ClientError
from app.schema.fanout import Classify, Group, Plan
from app.schema.inputs import RecipeChangeFilter
from app.schema.subscriptions import recipe_changed_fanout
from app.schema.sync import stream_recipe_fanout
from app.services.errors import DomainError


async def prepare(
    schema: GraphQLSchema, plan: Plan, raw_variables: dict[str, Any] | None, context: Context
) -> tuple[tuple[Hashable, ...], Group, Classify, Hashable]:
    """(group key, a group to use if none exists yet, this subscriber's classifier and
    audience).
    Raises GraphQLError with a code for bad variables or credentials."""
    operation = next(d for d in plan.document.definitions if isinstance(d, OperationDefinitionNode))
    coerced = get_variable_values(schema, operation.variable_definitions or (), raw_variables or {})
    if isinstance(coerced, list):
        raise coerced[0]
    node = operation.selection_set.selections[0]
    assert isinstance(node, FieldNode)
    assert schema.subscription_type is not None
    args = get_argument_values(schema.subscription_type.fields[plan.field], node, coerced)
    viewer = context.viewer()
    try:
        if plan.field == "recipeChanged":
            raw = args.get("filter") or {}
            change_filter = RecipeChangeFilter(
                ids=raw.get("ids", UNSET),
                tags=raw.get("tags", UNSET),
                owner_id=raw.get("ownerId", UNSET),
            )
            classify, materialize, audience = recipe_changed_fanout(viewer, change_filter)
        else:
            authorization = (args.get("headers") or {}).get("authorization")
            if authorization:
                try:
                    viewer = await context.services.authenticate(authorization)
                except AuthError as error:
                    raise ClientError(error.message, "UNAUTHENTICATED") from error
            classify, materialize, audience = stream_recipe_fanout(viewer)
    except DomainError as error:
        raise GraphQLError(error.message, extensions=error.extensions()) from error
    # Group by what shapes the output: the document and the variables (a stream's `headers`
    # only authenticate, so subscribers of every user share one group).
    shaping = {k: v for k, v in (raw_variables or {}).items() if k != "headers"}
    key = (
        plan.field,
        plan.document.loc.source.body if plan.document.loc else id(plan),
        plan.operation_name,
        json.dumps(shaping, sort_keys=True, default=str),
    )
    return key, Group(plan, raw_variables or {}, materialize, context), classify, audience
