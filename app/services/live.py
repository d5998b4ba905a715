"""What a viewer should be told about a committed change: CREATED, UPDATED, DELETED or nothing.

A change is judged on the recipe as it was before and after it, against the viewer's
permissions at the time of the change and the subscription's filter, so access granted shows
as CREATED and access lost as DELETED (carrying only what the viewer could already see).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from app.auth.principal import Principal
from app.models.recipe import Access, Recipe
from app.realtime.events import RecipeEvent
from app.services import permissions
from app.services.errors import BadInput

MAX_FILTER_ITEMS = 100


class ChangeKind(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class LiveChange:
    kind: ChangeKind
    recipe: Recipe


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    ids: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    owner_id: str | None = None

    @classmethod
    def build(
        cls, ids: list[str] | None, tags: list[str] | None, owner_id: str | None
    ) -> ChangeFilter:
        for name, values in (("filter.ids", ids), ("filter.tags", tags)):
            if values is not None and len(values) > MAX_FILTER_ITEMS:
                raise BadInput.single(name, f"use at most {MAX_FILTER_ITEMS} values")
        return cls(
            ids=None if ids is None else frozenset(ids),
            tags=None if tags is None else frozenset(tags),
            owner_id=owner_id,
        )

    def matches(self, recipe: Recipe | Access) -> bool:
        return (
            (self.ids is None or recipe.id in self.ids)
            and (self.tags is None or self.tags.issubset(recipe.tags))
            and (self.owner_id is None or recipe.owner_id == self.owner_id)
        )


def _sees(viewer: Principal, flt: ChangeFilter, recipe: Access | None) -> bool:
    return (
        recipe is not None
        and not recipe.deleted
        and permissions.can_read(viewer, recipe)
        and flt.matches(recipe)
    )


Tag = Literal["after", "gone"]
"""Which state a viewer is shown: the new one, or its last readable one marked deleted."""


def classify_change(
    viewer: Principal, flt: ChangeFilter, event: RecipeEvent
) -> tuple[ChangeKind, Tag] | None:
    """What `viewer` should be told about `event`, as (kind, state), or None. Viewers with the
    same answer get the same message, so it is rendered once for all of them."""
    if event.unchanged:
        return None  # bookkeeping only (e.g. a foreign write being adopted)
    before, after = event.before_access, event.after_access
    saw = _sees(viewer, flt, before)
    sees = _sees(viewer, flt, after)
    if before is None and event.op != "insert":
        # No pre-image (database without pre-images, or a change by another program):
        # judge on the new state alone.
        if sees and event.after is not None:
            created = event.after.version == 1
            return (ChangeKind.CREATED if created else ChangeKind.UPDATED), "after"
        alive = None if after is None or not after.deleted else replace(after, deleted=False)
        if _sees(viewer, flt, alive):
            return ChangeKind.DELETED, "after"
        return None
    if sees:
        return (ChangeKind.UPDATED if saw else ChangeKind.CREATED), "after"
    if saw:
        # Deleted, or no longer visible to this viewer: tell it to drop the copy it has,
        # without revealing the new state it may no longer read.
        return ChangeKind.DELETED, "gone"
    return None


def materialize_change(event: RecipeEvent, kind: ChangeKind, tag: Tag) -> LiveChange:
    after, before = event.after, event.before
    if tag == "after":
        assert after is not None
        return LiveChange(kind, after)
    assert before is not None
    version = after.version if after is not None else before.version
    gone: Recipe = before.model_copy(update={"deleted": True, "version": version})
    return LiveChange(kind, gone)


def view_change(viewer: Principal, flt: ChangeFilter, event: RecipeEvent) -> LiveChange | None:
    answer = classify_change(viewer, flt, event)
    return None if answer is None else materialize_change(event, *answer)
