"""The stored recipe: one MongoDB document per recipe, tombstones included."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from beanie import Document
from pymongo import ASCENDING, IndexModel

from app.models.fields import (
    EDITABLE_FIELDS,
    Ingredient,
    RecipeContent,
    Visibility,
    search_texts,
)

PUBLIC_READER = "*"
"""Marker in `readers` that makes a recipe readable by every signed-in user."""

MAX_TERM_LENGTH = 24
_WORD = re.compile(r"\w+")


class Recipe(Document, RecipeContent):
    """A recipe as stored: the editable fields of `RecipeContent` (app/models/fields.py) and
    the server's own. `readers` and `search_words` are derived, see `derived_fields`."""

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
    # and the distinct words that search finds.
    readers: list[str] = []
    revoked: list[str] = []
    audience: list[str] = []
    search_words: list[str] = []

    class Settings:
        name = "recipes"
        use_revision = False
        # Each index names the queries it serves. Every index entry is written again when its
        # key changes (on SecantusDB 0.7: every entry of every index, on every update), so
        # there is ONE ordering field, `stamp`, changed by each write and held by two indexes
        # only. docs/architecture.md ("Indexes") has the per-query table.
        indexes = [
            # pullRecipe() and streamRecipe()'s catch-up pull: {audience: viewer, stamp: window}
            # in stamp order, one scan per audience value (services/sync.py).
            # recipes() for non-admins: {audience: {$in: [viewer, "*"]}} newest stamp first,
            # `readers`/`deleted` checked on the fetched documents (revoked entries and
            # tombstones are few); updatedSince is a stamp range here (services/recipes.py).
            IndexModel(
                [("audience", ASCENDING), ("stamp", ASCENDING), ("_id", ASCENDING)],
                name="audience_stamp",
            ),
            # pullRecipe() and recipes() for admins: every recipe in stamp order.
            IndexModel([("stamp", ASCENDING), ("_id", ASCENDING)], name="stamp"),
            # purge_tombstones(): {deleted: true, stamp: {$lt: cutoff}}. Partial: only
            # tombstones have an entry, so writes to live recipes never touch it.
            IndexModel(
                [("stamp", ASCENDING)],
                name="tombstones_stamp",
                partialFilterExpression={"deleted": True},
            ),
            # recipes(filter.search): one range per typed word on the distinct words
            # ({search_words: {$elemMatch: {$gte: w, $lt: w + U+10FFFF}}}).
            IndexModel([("search_words", ASCENDING)], name="search_words"),
            # recipes(filter.tags): {tags: {$all: [...]}}.
            IndexModel([("tags", ASCENDING)], name="tags"),
            # recipes(filter.ownerId): equality; the one owner's recipes are sorted after the
            # scan. `owner_id` never changes, so no write rewrites this entry on MongoDB.
            IndexModel([("owner_id", ASCENDING)], name="owner_id"),
        ]


OBSOLETE_INDEXES = (
    "readers_deleted_updated",
    "deleted_updated",
    "deleted_stamp",
    "owner_updated",
    "search_terms",
)
"""Indexes earlier versions created; dropped at startup (app/db.py) so writes stop paying
for them."""

WORD_END = "\U0010ffff"
"""Above every character a word can continue with: `[w, w + WORD_END)` holds exactly the
strings that start with `w` (MongoDB compares strings by UTF-8 bytes, which is code point
order, as Python does; U+10FFFF is a non-character, never part of a word)."""


def words(text: str) -> list[str]:
    """Lower-cased words of `text` (Unicode aware), each cut to MAX_TERM_LENGTH."""
    return [w[:MAX_TERM_LENGTH] for w in _WORD.findall(text.casefold())]


def search_words(fields: dict[str, Any]) -> list[str]:
    """The distinct words of the searchable fields (title, tags, ingredient names...), sorted.

    SecantusDB has no text indexes and an anchored regex still scans, so a typed prefix is a
    range on a multikey index over these words (see `word_prefix`): one index entry per
    distinct word, where storing every prefix cost one per prefix. Same on MongoDB.
    """
    return sorted({word for source in search_texts(fields) for word in words(source)})


def word_prefix(prefix: str) -> dict[str, Any]:
    """The filter matching recipes with a word that starts with `prefix` (a `words()` item).

    `$elemMatch` makes both bounds apply to the same array element: a bare range on an array
    field matches when one element is >= the prefix and another is below the end."""
    return {"search_words": {"$elemMatch": {"$gte": prefix, "$lt": prefix + WORD_END}}}


def readers(owner_id: str, collaborators: list[str], visibility: Visibility) -> list[str]:
    members = [owner_id, *(c for c in collaborators if c != owner_id)]
    if visibility is Visibility.PUBLIC:
        members.append(PUBLIC_READER)
    return members


MAX_REVOKED = 1_000


def derived_fields(
    fields: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`readers`, `revoked`, `audience` and `search_words` for a complete set of stored fields
    (see `access_fields`)."""
    return {**access_fields(fields, previous), "search_words": search_words(fields)}


def access_fields(fields: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """`readers`, `revoked` and `audience` for a complete set of stored fields.

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
    }


@dataclass(frozen=True, slots=True)
class Access:
    """What permissions and subscription filters read of one state of a recipe, read once per
    change and shared by every subscriber the change is judged for: each attribute read on a
    `Recipe` goes through Beanie's lazy-parsing `__getattribute__`."""

    id: str
    deleted: bool
    visibility: Visibility
    owner_id: str
    collaborators: frozenset[str]
    tags: frozenset[str]

    @classmethod
    def of(cls, recipe: Recipe) -> Access:
        people, tags = frozenset(recipe.collaborators), frozenset(recipe.tags)
        return cls(recipe.id, recipe.deleted, recipe.visibility, recipe.owner_id, people, tags)


def same_content(before: Recipe, after: Recipe) -> bool:
    """True when a change altered nothing a client sees (only derived or sync fields)."""
    return before.version == after.version and all(
        getattr(before, name) == getattr(after, name)
        for name in (*EDITABLE_FIELDS, "owner_id", "deleted")
    )


__all__ = [
    "MAX_REVOKED",
    "OBSOLETE_INDEXES",
    "PUBLIC_READER",
    "WORD_END",
    "Access",
    "Ingredient",
    "Recipe",
    "Visibility",
    "access_fields",
    "derived_fields",
    "readers",
    "same_content",
    "search_words",
    "word_prefix",
    "words",
]
