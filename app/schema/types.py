"""GraphQL output types. Names and fields are public API that mobile apps hard-code."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.models import recipe as model
from app.schema.context import Info
from app.services import live
from app.services.recipes import RecipePage

Visibility = strawberry.enum(model.Visibility, description="Who can read a recipe.")
ChangeKind = strawberry.enum(live.ChangeKind, description="What a change means to the viewer.")


@strawberry.type
class Ingredient:
    name: str
    quantity: float | None = None
    unit: str | None = None
    note: str | None = None

    @classmethod
    def from_models(cls, items: list[model.Ingredient]) -> list[Ingredient]:
        return [cls(name=i.name, quantity=i.quantity, unit=i.unit, note=i.note) for i in items]


@strawberry.type
class Recipe:
    id: strawberry.ID
    title: str
    description: str
    ingredients: list[Ingredient]
    steps: list[str]
    tags: list[str]
    servings: int | None
    prep_minutes: int | None
    cook_minutes: int | None
    image_url: str | None
    owner_id: strawberry.ID
    collaborators: list[strawberry.ID]
    visibility: Visibility  # type: ignore[valid-type]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool

    @classmethod
    def from_model(cls, r: model.Recipe) -> Recipe:
        return cls(
            id=strawberry.ID(r.id),
            title=r.title,
            description=r.description,
            ingredients=Ingredient.from_models(r.ingredients),
            steps=r.steps,
            tags=r.tags,
            servings=r.servings,
            prep_minutes=r.prep_minutes,
            cook_minutes=r.cook_minutes,
            image_url=r.image_url,
            owner_id=strawberry.ID(r.owner_id),
            collaborators=[strawberry.ID(c) for c in r.collaborators],
            visibility=r.visibility,
            version=r.version,
            created_at=r.created_at,
            updated_at=r.updated_at,
            deleted=r.deleted,
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
