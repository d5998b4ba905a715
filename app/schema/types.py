"""GraphQL output types. Names and fields are public API that mobile apps hard-code."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.models import recipe as model
from app.schema.context import Info
from app.schema.editable import OUTPUT, editable_fields, output_values
from app.services import live
from app.services.recipes import RecipePage

ChangeKind = strawberry.enum(live.ChangeKind, description="What a change means to the viewer.")


@strawberry.type
@editable_fields(OUTPUT, after="id", owner_only_after="owner_id")
class Recipe:
    id: strawberry.ID
    owner_id: strawberry.ID
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool

    @classmethod
    def from_model(cls, r: model.Recipe) -> Recipe:
        return cls(
            id=strawberry.ID(r.id),
            owner_id=strawberry.ID(r.owner_id),
            version=r.version,
            created_at=r.created_at,
            updated_at=r.updated_at,
            deleted=r.deleted,
            **output_values(r),
        )


@strawberry.type
class Viewer:
    id: strawberry.ID
    roles: list[str]


@strawberry.type
class RecipeEdge:
    cursor: str
    node: Recipe


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class RecipeConnection:
    edges: list[RecipeEdge]
    page_info: PageInfo
    _page: strawberry.Private[RecipePage]

    @strawberry.field(description="Recipes matching the filter, over all pages.")
    async def total_count(self, info: Info) -> int:
        return await self._page.count()

    @classmethod
    def from_page(cls, page: RecipePage) -> RecipeConnection:
        edges = [RecipeEdge(cursor=page.cursor(r), node=Recipe.from_model(r)) for r in page.items]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _page=page,
        )


@strawberry.type(description="The write was refused: the recipe changed since expectedVersion.")
class VersionConflict:
    id: strawberry.ID
    expected_version: int | None
    current_version: int
    current: Recipe | None = strawberry.field(
        description="The recipe as stored now; null when it was deleted."
    )


@strawberry.type
class RecipeDeleted:
    id: strawberry.ID
    version: int


@strawberry.type(description="A committed change, as the viewer should apply it.")
class RecipeChange:
    kind: ChangeKind  # type: ignore[valid-type]
    recipe: Recipe
    version: int
