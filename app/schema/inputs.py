"""GraphQL input types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.schema.editable import INPUT, built_from_input, editable_fields


@strawberry.input
class RecipeFilter:
    search: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET
    updated_since: datetime | None = strawberry.UNSET


@built_from_input
@strawberry.input
@editable_fields(INPUT, after="expected_version")
class RecipeInput:
    id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Optional; clients may generate ids offline (1-64 of [A-Za-z0-9_-]).",
    )
    expected_version: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Omit to create; required to change an existing recipe.",
    )


@strawberry.input
class RecipeChangeFilter:
    ids: list[strawberry.ID] | None = strawberry.UNSET
    tags: list[str] | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET
