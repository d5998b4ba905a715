"""Subscription fields, fed by the change feed's hub."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Hashable
from typing import Any

import strawberry

from app.auth.principal import Principal
from app.realtime.events import RecipeEvent
from app.realtime.hub import SubscriptionEnded
from app.schema.context import Info
from app.schema.errors import ClientError
from app.schema.fanout import Classify, Materialize
from app.schema.inputs import RecipeChangeFilter
from app.schema.types import ChangeKind, Recipe, RecipeChange
from app.services.live import (
    ChangeFilter,
    LiveChange,
    classify_change,
    materialize_change,
    view_change,
)


def _build_filter(flt: RecipeChangeFilter | None) -> ChangeFilter:
    if not flt:
        return ChangeFilter()
    ids = None if flt.ids in (None, strawberry.UNSET) else [str(i) for i in flt.ids]
    tags = None if flt.tags in (None, strawberry.UNSET) else list(flt.tags)
    owner = None if flt.owner_id in (None, strawberry.UNSET) else str(flt.owner_id)
    return ChangeFilter.build(ids, tags, owner)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Changes to recipes the viewer may read. Losing access arrives as DELETED, "
        "gaining it as CREATED."
    )
    async def recipe_changed(
        self, info: Info, filter: RecipeChangeFilter | None = strawberry.UNSET
    ) -> AsyncGenerator[RecipeChange, None]:
        viewer = info.context.viewer()
        change_filter = _build_filter(filter)
        hub = info.context.hub

        def select(event: object) -> LiveChange | None:
            return view_change(viewer, change_filter, event)  # type: ignore[arg-type]

        async with hub.subscribe(select) as subscription:
            try:
                async for change in subscription:
                    yield RecipeChange(
                        kind=ChangeKind(change.kind.value),
                        recipe=Recipe.from_model(change.recipe),
                        version=change.recipe.version,
                    )
            except SubscriptionEnded as ended:
                raise ClientError(str(ended), ended.code) from ended


def recipe_changed_fanout(
    viewer: Principal, filter_arg: RecipeChangeFilter | None
) -> tuple[Classify, Materialize, Hashable]:
    """The grouped fan-out's view of `recipeChanged` (see app/schema/fanout.py): classifier,
    materializer and audience (everything the classifier's answer depends on besides the
    event)."""
    change_filter = _build_filter(filter_arg)

    def classify(event: RecipeEvent) -> Hashable | None:
        return classify_change(viewer, change_filter, event)

    def materialize(event: RecipeEvent, answer: Any) -> RecipeChange:
        change = materialize_change(event, *answer)
        return RecipeChange(
            kind=ChangeKind(change.kind.value),
            recipe=Recipe.from_model(change.recipe),
            version=change.recipe.version,
        )

    return classify, materialize, (viewer.id, viewer.roles, change_filter)
