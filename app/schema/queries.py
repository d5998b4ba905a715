"""Query fields."""

from __future__ import annotations

from typing import TypeVar

import strawberry

from app.schema.context import Info
from app.schema.inputs import RecipeFilter
from app.schema.types import Recipe, RecipeConnection, Viewer
from app.services.recipes import RecipeQuery

T = TypeVar("T")


def _unset_to_none(value: T | None) -> T | None:
    return None if value is strawberry.UNSET else value


@strawberry.type
class Query:
    @strawberry.field(description="Null when absent, deleted, or not readable by the viewer.")
    async def recipe(self, info: Info, id: strawberry.ID) -> Recipe | None:
        found = await info.context.recipes.get(info.context.viewer(), str(id))
        return None if found is None else Recipe.from_model(found)

    @strawberry.field(
        description="Readable recipes, newest `updatedAt` first (ties by id). `first` <= 100."
    )
    async def recipes(
        self,
        info: Info,
        filter: RecipeFilter | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> RecipeConnection:
        query = RecipeQuery()
        if filter:
            owner = _unset_to_none(filter.owner_id)
            query = RecipeQuery(
                search=_unset_to_none(filter.search),
                tags=_unset_to_none(filter.tags),
                owner_id=None if owner is None else str(owner),
                updated_since=_unset_to_none(filter.updated_since),
            )
        page = await info.context.recipes.list(
            info.context.viewer(), query, 20 if first is None else first, after or None
        )
        return RecipeConnection.from_page(page)

    @strawberry.field(description="The signed-in user.")
    def me(self, info: Info) -> Viewer:
        viewer = info.context.viewer()
        return Viewer(id=strawberry.ID(viewer.id), roles=list(viewer.roles))
