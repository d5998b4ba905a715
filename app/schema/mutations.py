"""Mutation fields: version-checked upsert and delete."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.schema.context import Info
from app.schema.editable import editable_values
from app.schema.inputs import RecipeInput
from app.schema.types import Recipe, RecipeDeleted, VersionConflict
from app.services import recipes as service

UpsertRecipeResult = Annotated[Recipe | VersionConflict, strawberry.union("UpsertRecipeResult")]
DeleteRecipeResult = Annotated[
    RecipeDeleted | VersionConflict, strawberry.union("DeleteRecipeResult")
]


def conflict_type(conflict: service.VersionConflict) -> VersionConflict:
    return VersionConflict(
        id=strawberry.ID(conflict.id),
        expected_version=conflict.expected_version,
        current_version=conflict.current_version,
        current=None if conflict.current is None else Recipe.from_model(conflict.current),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create (omit expectedVersion) or change (expectedVersion = current version) "
        "a recipe. A stale or missing expectedVersion changes nothing and returns VersionConflict."
    )
    async def upsert_recipe(self, info: Info, input: RecipeInput) -> UpsertRecipeResult:
        write = service.RecipeWrite(
            id=None if input.id in (None, strawberry.UNSET) else str(input.id),
            expected_version=(
                None if input.expected_version is strawberry.UNSET else input.expected_version
            ),
            fields=editable_values(input),
        )
        result = await info.context.recipes.upsert(info.context.guard_mutation(), write)
        if isinstance(result, service.VersionConflict):
            info.context.conflict("upsertRecipe")
            return conflict_type(result)
        return Recipe.from_model(result)

    @strawberry.mutation(description="Owner only. Leaves a tombstone (deleted, version + 1).")
    async def delete_recipe(
        self, info: Info, id: strawberry.ID, expected_version: int
    ) -> DeleteRecipeResult:
        result = await info.context.recipes.delete(
            info.context.guard_mutation(), str(id), expected_version
        )
        if isinstance(result, service.VersionConflict):
            info.context.conflict("deleteRecipe")
            return conflict_type(result)
        return RecipeDeleted(id=strawberry.ID(result.id), version=result.version)
