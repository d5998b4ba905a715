"""The stored recipe: one MongoDB document per recipe, tombstones included."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from beanie import Document
from pymongo import ASCENDING, DESCENDING, IndexModel

from app.models.fields import Ingredient, RecipeContent, Visibility, search_texts

PUBLIC_READER = "*"
"""Marker in `readers` that makes a recipe readable by every signed-in user."""

MAX_TERM_LENGTH = 24
_WORD = re.compile(r"\w+")


class Recipe(Document, RecipeContent):
    """A recipe as stored: the editable fields of `RecipeContent` (app/models/fields.py) and
    the server's own. `readers` and `search_terms` are derived, see `derived_fields`."""

    id: str  # type: ignore[assignment]
    owner_id: str
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    # Sync order: ms since the epoch, strictly increasing in commit order (see docs/sync.md).
    stamp: float | None = None
    # The version at which each editable field last changed (field-level merge).
    field_versions: dict[str, int] = {}
    # Derived: who may read it, who lost access (told on their next pull), their union,
    # and the search prefixes.
    readers: list[str] = []
    revoked: list[str] = []
    audience: list[str] = []
    search_terms: list[str] = []

    class Settings:
        name = "recipes"
        use_revision = False
        indexes = [
            # recipes(): what a viewer may read, newest first (keyset pagination).
            IndexModel(
                [
                    ("readers", ASCENDING),
                    ("deleted", ASCENDING),
                    ("updated_at", DESCENDING),
                    ("_id", DESCENDING),
                ],
                name="readers_deleted_updated",
            ),
            # admins list everything; updatedSince filters.
            IndexModel(
                [("deleted", ASCENDING), ("updated_at", DESCENDING), ("_id", DESCENDING)],
                name="deleted_updated",
            ),
            # pullRecipe(): what a viewer may read or has lost, in sync order.
            IndexModel(
                [("audience", ASCENDING), ("stamp", ASCENDING), ("_id", ASCENDING)],
                name="audience_stamp",
            ),
            # pullRecipe() for admins (every recipe, in sync order).
            IndexModel([("stamp", ASCENDING), ("_id", ASCENDING)], name="stamp"),
            # Tombstone purge.
            IndexModel([("deleted", ASCENDING), ("stamp", ASCENDING)], name="deleted_stamp"),
            IndexModel([("search_terms", ASCENDING)], name="search_terms"),
            IndexModel([("tags", ASCENDING)], name="tags"),
            IndexModel([("owner_id", ASCENDING), ("updated_at", DESCENDING)], name="owner_updated"),
        ]


def words(text: str) -> list[str]:
    """Lower-cased words of `text` (Unicode aware), each cut to MAX_TERM_LENGTH."""
    return [w[:MAX_TERM_LENGTH] for w in _WORD.findall(text.casefold())]


def search_terms(fields: dict[str, Any]) -> list[str]:
    """Every prefix of every word of the searchable fields (title, tags, ingredient names...).

    SecantusDB has no text indexes and an anchored regex still scans, so prefix search is an
    exact match on a multikey index over prefixes; this works the same on MongoDB.
    """
    terms: set[str] = set()
    for source in search_texts(fields):
        for word in words(source):
            terms.update(word[:n] for n in range(1, len(word) + 1))
    return sorted(terms)


def readers(owner_id: str, collaborators: list[str], visibility: Visibility) -> list[str]:
    members = [owner_id, *(c for c in collaborators if c != owner_id)]
    if visibility is Visibility.PUBLIC:
        members.append(PUBLIC_READER)
    return members


MAX_REVOKED = 1_000


def derived_fields(
    fields: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`readers`, `revoked`, `audience` and `search_terms` for a complete set of stored fields.

    `previous` is the stored state before this change: whoever could read it then but cannot
    now is added to `revoked` (and removed again if access comes back).
    """
    now_readers = readers(
        fields["owner_id"],
        list(fields.get("collaborators", [])),
        Visibility(fields.get("visibility", Visibility.PRIVATE)),
    )
    lost: list[str] = []
    if previous is not None:
        lost = [r for r in previous.get("readers", []) if r not in now_readers]
        lost += [r for r in previous.get("revoked", []) if r not in now_readers and r not in lost]
    lost = lost[-MAX_REVOKED:]
    return {
        "readers": now_readers,
        "revoked": lost,
        "audience": now_readers + [r for r in lost if r not in now_readers],
        "search_terms": search_terms(fields),
    }


__all__ = [
    "MAX_REVOKED",
    "PUBLIC_READER",
    "Ingredient",
    "Recipe",
    "Visibility",
    "derived_fields",
    "readers",
    "search_terms",
    "words",
]
