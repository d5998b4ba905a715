"""Recipe reads and version-checked writes.

Every write is a compare-and-set on `{_id, version}`: the current document is read to decide
permissions, then `update_one({_id, version: expected})` (through `StampedWriter`) applies the
change only if nobody changed the recipe in between. Never a read-then-blind-write.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.auth.principal import Principal
from app.models.recipe import PUBLIC_READER, Recipe, word_prefix, words
from app.services import permissions
from app.services.cursor import decode_cursor, encode_cursor
from app.services.errors import BadInput, Forbidden, NotFound
from app.services.state import check_admin_fields, new_document, next_state, stored_result
from app.services.validation import validate_fields, validate_id
from app.services.writes import Create, StampedWriter, Update

MAX_PAGE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SEARCH_WORDS = 10


@dataclass(frozen=True, slots=True)
class RecipeWrite:
    """An upsert request: the fields the client provided, by stored name."""

    id: str | None
    expected_version: int | None
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VersionConflict:
    id: str
    expected_version: int | None
    current_version: int
    current: Recipe | None  # None when the recipe is a tombstone


@dataclass(frozen=True, slots=True)
class Deleted:
    id: str
    version: int


@dataclass(frozen=True, slots=True)
class RecipeQuery:
    search: str | None = None
    tags: list[str] | None = None
    owner_id: str | None = None
    updated_since: datetime | None = None


@dataclass(slots=True)
class RecipePage:
    items: list[Recipe]
    has_next_page: bool
    count: Callable[[], Awaitable[int]] = field(repr=False)

    def cursor(self, recipe: Recipe) -> str:
        return encode_cursor(_order_key(recipe), recipe.id)


def _order_key(recipe: Recipe) -> float:
    """A recipe's place in recipes() order: its stamp. A write made around Larder has none
    until adopted (milliseconds later, app/services/adopt.py); it sorts last until then."""
    return recipe.stamp if recipe.stamp is not None else -1.0


def new_id() -> str:
    return uuid.uuid4().hex


class RecipeService:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], writer: StampedWriter) -> None:
        self._recipes = collection
        self.writer = writer

    # ---------------------------------------------------------------- reads

    async def _load(self, recipe_id: str) -> Recipe | None:
        raw = await self._recipes.find_one({"_id": recipe_id})
        return None if raw is None else Recipe.model_validate(raw)

    async def get(self, viewer: Principal, recipe_id: str) -> Recipe | None:
        """The recipe, or None when absent, deleted or not readable (indistinguishable)."""
        if not recipe_id or len(recipe_id) > 64:
            return None
        recipe = await self._load(recipe_id)
        if recipe is None or recipe.deleted or not permissions.can_read(viewer, recipe):
            return None
        return recipe

    async def list(
        self, viewer: Principal, query: RecipeQuery, first: int, after: str | None
    ) -> RecipePage:
        if not 0 <= first <= MAX_PAGE:
            raise BadInput.single("first", f"must be between 0 and {MAX_PAGE}")
        base = self._filter(viewer, query)
        page_filter = dict(base)
        if after:
            at, recipe_id = decode_cursor(after)
            page_filter["$or"] = [
                {"stamp": {"$lt": at}},
                {"stamp": at, "_id": {"$lt": recipe_id}},
            ]
        # Newest first by stamp, the sync order: stamps follow commit order and
        # updated_at = floor(stamp) in ms, so this is also most recently updated first, and the
        # index that serves pulls serves this too (no index on updated_at). Stamps are unique;
        # the id only breaks ties between documents written around Larder.
        cursor = self._recipes.find(page_filter, sort=[("stamp", -1), ("_id", -1)], limit=first + 1)
        raws = await cursor.to_list(length=first + 1)
        items = [Recipe.model_validate(raw) for raw in raws[:first]]

        async def count() -> int:
            return await self._recipes.count_documents(base)

        return RecipePage(items=items, has_next_page=len(raws) > first, count=count)

    def _filter(self, viewer: Principal, query: RecipeQuery) -> dict[str, Any]:
        conditions: dict[str, Any] = {"deleted": False, **permissions.readable_filter(viewer)}
        if not viewer.is_admin:
            # Implied by `readers` (audience = readers + revoked), stated so that the
            # audience_stamp index serves the query and its order.
            conditions["audience"] = {"$in": [viewer.id, PUBLIC_READER]}
        if query.search is not None:
            terms = list(dict.fromkeys(words(query.search)))
            if len(terms) > MAX_SEARCH_WORDS:
                raise BadInput.single("filter.search", f"use at most {MAX_SEARCH_WORDS} words")
            # Every typed word must start some word of the recipe.
            prefixes = [word_prefix(term) for term in terms]
            if len(prefixes) == 1:
                conditions.update(prefixes[0])
            elif prefixes:
                conditions["$and"] = prefixes
        if query.tags:
            if len(query.tags) > 50:
                raise BadInput.single("filter.tags", "use at most 50 tags")
            conditions["tags"] = {"$all": list(query.tags)}
        if query.owner_id is not None:
            conditions["owner_id"] = query.owner_id
        if query.updated_since is not None:
            # updated_at > since, as a stamp range: updated_at is the stamp cut to whole ms.
            since = query.updated_since
            if since.tzinfo is None:  # an instant without an offset is UTC, as MongoDB reads it
                since = since.replace(tzinfo=UTC)
            since_ms = (since - _EPOCH) // timedelta(milliseconds=1)
            conditions["stamp"] = {"$gte": float(since_ms + 1)}
        return conditions

    # --------------------------------------------------------------- writes

    async def upsert(self, viewer: Principal, write: RecipeWrite) -> Recipe | VersionConflict:
        changes = validate_fields(write.fields)
        if write.expected_version is not None and write.expected_version < 1:
            raise BadInput.single("expectedVersion", "must be 1 or greater")
        if write.id is None:
            if write.expected_version is not None:
                raise BadInput.single("expectedVersion", "needs an id: omit it to create")
            created = await self._create(viewer, new_id(), changes)
            assert created is not None  # a fresh uuid4 never collides
            return created
        recipe_id = validate_id(write.id)
        existing = await self._load(recipe_id)
        if existing is None:
            if write.expected_version is not None:
                raise NotFound(f"Recipe {recipe_id} not found")
            created = await self._create(viewer, recipe_id, changes)
            if created is not None:
                return created
            existing = await self._load(recipe_id)  # lost a creation race
            if existing is None:  # pragma: no cover - created then purged meanwhile
                raise NotFound(f"Recipe {recipe_id} not found")
        return await self._update(viewer, existing, write.expected_version, changes)

    async def _create(
        self, viewer: Principal, recipe_id: str, changes: dict[str, Any]
    ) -> Recipe | None:
        """Insert version 1; None when the id already exists."""
        if "title" not in changes:
            raise BadInput.single("title", "is required")
        doc = new_document(viewer.id, changes)
        (stamp,) = await self.writer.apply([Create(recipe_id, doc)])
        return None if stamp is None else stored_result(recipe_id, doc, stamp, created=True)

    async def _update(
        self,
        viewer: Principal,
        existing: Recipe,
        expected_version: int | None,
        changes: dict[str, Any],
    ) -> Recipe | VersionConflict:
        if not permissions.can_read(viewer, existing):
            if expected_version is None:
                raise BadInput.single("id", "is already in use")
            raise NotFound(f"Recipe {existing.id} not found")
        if not existing.deleted and not permissions.can_edit(viewer, existing):
            raise Forbidden("Only the owner and collaborators may edit this recipe")
        if existing.deleted or expected_version != existing.version:
            return _conflict(existing, expected_version)
        update = next_state(existing, changes)
        check_admin_fields(viewer, existing, update.changed)
        (stamp,) = await self.writer.apply([Update(existing.id, existing.version, update.set)])
        if stamp is None:
            current = await self._load(existing.id)
            if current is None:
                raise NotFound(f"Recipe {existing.id} not found")
            return _conflict(current, expected_version)
        return update.result(stamp)

    async def delete(
        self, viewer: Principal, recipe_id: str, expected_version: int
    ) -> Deleted | VersionConflict:
        existing = await self.get(viewer, recipe_id)
        if existing is None:
            raise NotFound(f"Recipe {recipe_id} not found")
        if not permissions.can_administer(viewer, existing):
            raise Forbidden("Only the owner may delete this recipe")
        if expected_version != existing.version:
            return _conflict(existing, expected_version)
        update = next_state(existing, {}, deleted=True)
        (stamp,) = await self.writer.apply([Update(recipe_id, existing.version, update.set)])
        if stamp is None:
            current = await self._load(recipe_id)
            if current is None:
                raise NotFound(f"Recipe {recipe_id} not found")
            return _conflict(current, expected_version)
        return Deleted(id=recipe_id, version=existing.version + 1)


def _conflict(current: Recipe, expected_version: int | None) -> VersionConflict:
    return VersionConflict(
        id=current.id,
        expected_version=expected_version,
        current_version=current.version,
        current=None if current.deleted else current,
    )
