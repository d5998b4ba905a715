"""GraphQL input types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.schema.types import Visibility


@strawberry.input
class RecipeFilter:
    search: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET
    updated_since: datetime | None = strawberry.UNSET


@strawberry.input
class IngredientInput:
    name: str
    quantity: float | None = strawberry.UNSET
    unit: str | None = strawberry.UNSET
    note: str | None = strawberry.UNSET


@strawberry.input
class RecipeInput:
    id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Optional; clients may generate ids offline (1-64 of [A-Za-z0-9_-]).",
    )
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Omit to create; required to change an existing recipe.",
    )
    title: str
    description: str | None = strawberry.UNSET
    ingredients: list[IngredientInput] | None = strawberry.UNSET
    steps: list[str] | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    servings: int | None = strawberry.UNSET
    prep_minutes: int | None = strawberry.UNSET
    cook_minutes: int | None = strawberry.UNSET
    image_url: str | None = strawberry.UNSET
    collaborators: list[strawberry.ID] | None = strawberry.UNSET
    visibility: Visibility | None = strawberry.UNSET  # type: ignore[valid-type]


@strawberry.input
class RecipeChangeFilter:
    ids: list[strawberry.ID] | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET
