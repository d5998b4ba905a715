"""Computing a recipe's next stored state: defaults, versions, field versions, derived fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.auth.principal import Principal
from app.models.fields import (
    CREATE_DEFAULTS,
    EDITABLE_FIELDS,
    OWNER_ONLY_FIELDS,
    SEARCHABLE_FIELDS,
)
from app.models.recipe import Recipe, access_fields, derived_fields, search_words
from app.services import permissions
from app.services.errors import Forbidden
from app.services.writes import stamp_time


def new_document(owner_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The stored fields of a new recipe (version 1) made of validated `changes`."""
    doc: dict[str, Any] = {
        **CREATE_DEFAULTS,
        **changes,
        "owner_id": owner_id,
        "version": 1,
        "deleted": False,
        "field_versions": dict.fromkeys(EDITABLE_FIELDS, 1),
    }
    doc.update(derived_fields(doc))
    return doc


def stored_result(
    recipe_id: str, fields: dict[str, Any], stamp: float, *, created: bool = False
) -> Recipe:
    when = stamp_time(stamp)
    extra: dict[str, Any] = {"stamp": stamp, "updated_at": when}
    if created:
        extra["created_at"] = when
    recipe: Recipe = Recipe.model_validate({**fields, "_id": recipe_id, **extra})
    return recipe


@dataclass(frozen=True, slots=True)
class NextState:
    existing: Recipe
    stored: dict[str, Any]  # the existing stored fields
    set: dict[str, Any]  # what to $set
    changed: frozenset[str]  # editable fields whose value changes

    def result(self, stamp: float) -> Recipe:
        return stored_result(self.existing.id, {**self.stored, **self.set}, stamp)


def stored_fields(recipe: Recipe) -> dict[str, Any]:
    fields: dict[str, Any] = recipe.model_dump(mode="python", exclude={"id", "revision_id"})
    return fields


def next_state(
    existing: Recipe, changes: dict[str, Any], *, deleted: bool | None = None
) -> NextState:
    """The $set that applies validated `changes` (and optionally (un)deletes) as version + 1.

    Derived fields are $set only when they change: the search words are recomputed only when
    a searchable field changed, the access lists only written when they differ. Less to
    compute, and a smaller update (and oplog entry) for the common edit."""
    stored = stored_fields(existing)
    changed = frozenset(k for k, v in changes.items() if stored.get(k) != v)
    version = existing.version + 1
    field_versions = {**stored.get("field_versions", {}), **dict.fromkeys(changed, version)}
    update: dict[str, Any] = {**changes, "version": version, "field_versions": field_versions}
    if deleted is not None:
        update["deleted"] = deleted
    after = {**stored, **update}
    for name, value in access_fields(after, previous=stored).items():
        if stored.get(name) != value:
            update[name] = value
    if changed & SEARCHABLE_FIELDS:
        update["search_words"] = search_words(after)
    return NextState(existing=existing, stored=stored, set=update, changed=changed)


def check_admin_fields(viewer: Principal, existing: Recipe, changed: frozenset[str]) -> None:
    if changed & OWNER_ONLY_FIELDS and not permissions.can_administer(viewer, existing):
        raise Forbidden("Only the owner may change collaborators or visibility")
