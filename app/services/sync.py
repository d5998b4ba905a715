"""Offline-first sync (RxDB's pull/push/stream protocol) and field-level merges.

Pull order is the write stamp, which follows commit order (see `writes.py`), and a pull never
reads past the clock's committed stamp: a client looping from its checkpoint cannot skip a
change that commits late. docs/sync.md has the argument in full.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pymongo.asynchronous.collection import AsyncCollection

from app.auth.principal import Principal
from app.models.fields import (
    EDITABLE_BY_NAME,
    EDITABLE_FIELDS,
    GRAPHQL_NAMES,
    OWNER_ONLY_FIELDS,
    blank_content,
)
from app.models.recipe import PUBLIC_READER, Recipe
from app.realtime.events import RecipeEvent
from app.services import permissions
from app.services.errors import BadInput, DomainError, FieldError, Forbidden, NotFound
from app.services.state import check_admin_fields, new_document, next_state, stored_fields
from app.services.validation import validate_fields, validate_id
from app.services.writes import Create, Op, StampedWriter, Update, stamp_time

MAX_PULL = 1_000
MAX_PUSH_ROWS = 100
MERGE_ATTEMPTS = 10


class CheckpointExpired(DomainError):
    code = "CHECKPOINT_EXPIRED"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    updated_at: float  # the stamp, ms since the epoch


@dataclass(frozen=True, slots=True)
class SyncState:
    """A document as a sync client sees it (`deleted` is RxDB's `_deleted`)."""

    fields: dict[str, Any]  # editable fields, stored names
    version: int | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class PushRow:
    assumed: SyncState | None
    new: SyncState
    id: str


@dataclass(frozen=True, slots=True)
class MergeConflict:
    id: str
    fields: list[str]  # GraphQL names
    current: Recipe


def view_for(viewer: Principal, recipe: Recipe) -> Recipe | None:
    """What a sync client of `viewer` gets for `recipe`: the recipe, a content-free tombstone
    if the viewer lost access, or None if it never had any."""
    if permissions.can_read(viewer, recipe):
        return recipe
    if viewer.id in recipe.revoked or PUBLIC_READER in recipe.revoked:
        return _blank_tombstone(recipe)
    return None


def _blank_tombstone(recipe: Recipe) -> Recipe:
    """The recipe's id, version and stamp with empty content, marked deleted."""
    gone: Recipe = recipe.model_copy(update={**blank_content(), "deleted": True})
    return gone


StreamTag = Literal["after", "blank"]


def classify_stream(viewer: Principal, event: RecipeEvent) -> StreamTag | None:
    """Which sync document a viewer's stream gets for a change (the new state, or a
    content-free tombstone), or None."""
    after, before = event.after_access, event.before_access
    if after is None or event.after is None:
        return None  # hard delete (tombstone purge): clients already have the tombstone
    if event.unchanged:
        return None  # bookkeeping only (e.g. a foreign write being adopted)
    if permissions.can_read(viewer, after):
        return "after"
    if before is not None:
        could = not before.deleted and permissions.can_read(viewer, before)
        return "blank" if could else None
    view = view_for(viewer, event.after)
    return None if view is None else "blank"


def materialize_stream(event: RecipeEvent, tag: StreamTag) -> Recipe:
    assert event.after is not None
    return event.after if tag == "after" else _blank_tombstone(event.after)


def stream_view(viewer: Principal, event: RecipeEvent) -> Recipe | None:
    """The sync document a viewer's stream gets for a change, or None."""
    tag = classify_stream(viewer, event)
    return None if tag is None else materialize_stream(event, tag)


class SyncService:
    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        writer: StampedWriter,
        retention: timedelta,
        *,
        max_push_rows: int = MAX_PUSH_ROWS,
    ) -> None:
        self._max_push_rows = max_push_rows
        self._recipes = collection
        self._writer = writer
        self._retention = retention

    # ------------------------------------------------------------------ pull

    async def pull(
        self, viewer: Principal, checkpoint: Checkpoint | None, limit: int
    ) -> tuple[list[Recipe], Checkpoint | None]:
        if limit < 1:
            raise BadInput.single("limit", "must be at least 1")
        limit = min(limit, MAX_PULL)
        after = 0.0
        if checkpoint is not None:
            self._check_checkpoint(checkpoint)
            after = checkpoint.updated_at
        # Never read past what has certainly committed: see the module docstring.
        upper, purged = await self._writer.clock()
        self._check_not_purged(after, purged)
        # Stamps are unique (each write reserves its own), so "after the checkpoint" is simply
        # stamp > checkpoint.updatedAt. One index range scan per audience value, merged here:
        # simpler for query planners than an $in/$or (SecantusDB scans the collection then).
        # `$lt: next float above upper` is `$lte: upper` (no stamp lies between), spelled so
        # because SecantusDB 0.7's compound-index scan treats an `$lte` bound as exclusive.
        window = {"$gt": after, "$lt": math.nextafter(upper, math.inf)}
        audiences: list[str | None] = [None] if viewer.is_admin else [viewer.id, PUBLIC_READER]
        found: dict[str, dict[str, Any]] = {}
        for audience in audiences:
            query: dict[str, Any] = {"stamp": window}
            if audience is not None:
                query["audience"] = audience
            async for raw in self._recipes.find(
                query, sort=[("stamp", 1), ("_id", 1)], limit=limit
            ):
                found[raw["_id"]] = raw
        ordered = sorted(found.values(), key=lambda raw: (raw["stamp"], raw["_id"]))[:limit]
        if checkpoint is not None:
            # A purge that ran during the query moved the mark before deleting anything.
            self._check_not_purged(after, (await self._writer.clock())[1])
        documents: list[Recipe] = []
        last = checkpoint
        for raw in ordered:
            recipe = Recipe.model_validate(raw)
            assert recipe.stamp is not None
            last = Checkpoint(id=recipe.id, updated_at=recipe.stamp)
            view = view_for(viewer, recipe)
            if view is not None:
                documents.append(view)
        return documents, last

    def _check_checkpoint(self, checkpoint: Checkpoint) -> None:
        if not math.isfinite(checkpoint.updated_at) or checkpoint.updated_at < 0:
            raise BadInput.single("checkpoint.updatedAt", "must be a finite number >= 0")
        if len(checkpoint.id) > 64:
            raise BadInput.single("checkpoint.id", "is not an id this server issued")

    @staticmethod
    def _check_not_purged(after: float, purged: float) -> None:
        if after and after < purged:
            raise CheckpointExpired(
                "Deletions after this checkpoint were purged (tombstone retention): resync "
                "from scratch (clear local data, pull without a checkpoint)."
            )

    # ------------------------------------------------------------------ push

    async def push(self, viewer: Principal, rows: Sequence[PushRow]) -> list[Recipe]:
        """Apply the rows that fit the server's state (merging stale ones field by field) in
        one transaction; return the master state of every row that conflicts."""
        if len(rows) > self._max_push_rows:
            raise BadInput.single(
                "recipePushRow", f"send at most {self._max_push_rows} rows per push"
            )
        clean = self._validate_rows(rows)
        ids = [row.id for row in clean]
        current = {
            raw["_id"]: Recipe.model_validate(raw)
            async for raw in self._recipes.find({"_id": {"$in": ids}})
        }
        ops: list[tuple[str, Op]] = []
        conflicts: list[Recipe] = []
        for row in clean:
            decision = self._decide(viewer, row, current.get(row.id))
            if isinstance(decision, Recipe):
                conflicts.append(decision)
            elif decision is not None:
                ops.append((row.id, decision))
        stamps = await self._writer.apply([op for _, op in ops])
        lost = [
            recipe_id for (recipe_id, _), stamp in zip(ops, stamps, strict=True) if stamp is None
        ]
        if lost:  # someone wrote in between: the client retries against the new master
            async for raw in self._recipes.find({"_id": {"$in": lost}}):
                view = view_for(viewer, Recipe.model_validate(raw))
                if view is not None:
                    conflicts.append(view)
        return conflicts

    def _validate_rows(self, rows: Sequence[PushRow]) -> list[PushRow]:
        errors: list[FieldError] = []
        clean: list[PushRow] = []
        seen: set[str] = set()
        for i, row in enumerate(rows):
            prefix = f"recipePushRow[{i}]"
            try:
                validate_id(row.id, f"{prefix}.newDocumentState.id")
                if row.id in seen:
                    raise BadInput.single(f"{prefix}.newDocumentState.id", "appears twice")
                seen.add(row.id)
                new = SyncState(validate_fields(row.new.fields), row.new.version, row.new.deleted)
                assumed = None
                if row.assumed is not None:
                    assumed = SyncState(
                        validate_fields(row.assumed.fields),
                        row.assumed.version,
                        row.assumed.deleted,
                    )
                clean.append(PushRow(assumed=assumed, new=new, id=row.id))
            except BadInput as bad:
                for error in bad.errors:
                    name = error.field
                    if not name.startswith(prefix):
                        name = f"{prefix}.newDocumentState.{name}"
                    errors.append(FieldError(name, error.message))
        if errors:
            raise BadInput(errors)
        return clean

    def _decide(
        self, viewer: Principal, row: PushRow, current: Recipe | None
    ) -> Op | Recipe | None:
        """An op to apply, a master state to return as a conflict, or None (nothing to do)."""
        new, assumed = row.new, row.assumed
        if current is None:
            if assumed is not None:
                # The client had a master copy, so the recipe existed: its tombstone has been
                # purged. Never resurrect it from a stale copy; answer that it is gone.
                return _purged(row.id, assumed)
            if new.deleted:
                return None  # created and deleted offline: nothing to keep
            if "title" not in new.fields:
                raise BadInput.single("newDocumentState.title", "is required")
            return Create(row.id, new_document(viewer.id, new.fields))
        view = view_for(viewer, current)
        if view is None:
            raise NotFound(f"Recipe {row.id} not found")
        if assumed is not None and assumed.version is None and _same_fields(assumed, current):
            # A client that pushed a new recipe keeps its own copy as the assumed master,
            # without the version the server gave it: identical content means that version.
            assumed = SyncState(assumed.fields, current.version, assumed.deleted)
        if view is not current or assumed is None or assumed.version is None:
            return view  # lost access, or a create over an existing id
        if assumed.version == current.version:
            changes = dict(new.fields)
        else:
            merged = _merge(current, assumed, new)
            if merged is None:
                return view
            changes = merged
        deleted = new.deleted if new.deleted != current.deleted else None
        state = next_state(current, changes, deleted=deleted)
        if not permissions.can_edit(viewer, current) or (
            (state.changed & OWNER_ONLY_FIELDS or deleted is not None)
            and not permissions.can_administer(viewer, current)
        ):
            return view  # not allowed: the client falls back to the master state
        return Update(row.id, current.version, state.set, alive_only=False)

    # ----------------------------------------------------------------- patch

    async def patch(
        self, viewer: Principal, recipe_id: str, base_version: int, fields: dict[str, Any]
    ) -> Recipe | MergeConflict:
        changes = validate_fields(fields)
        if not changes:
            raise BadInput.single("patch", "must change at least one field")
        for _ in range(MERGE_ATTEMPTS):
            raw = await self._recipes.find_one({"_id": recipe_id})
            current = None if raw is None else Recipe.model_validate(raw)
            if current is None or current.deleted or not permissions.can_read(viewer, current):
                raise NotFound(f"Recipe {recipe_id} not found")
            if not permissions.can_edit(viewer, current):
                raise Forbidden("Only the owner and collaborators may edit this recipe")
            if not 1 <= base_version <= current.version:
                raise BadInput.single(
                    "baseVersion", f"must be between 1 and the current version {current.version}"
                )
            clashes = _clashes(current, base_version, changes)
            if clashes:
                return MergeConflict(recipe_id, [GRAPHQL_NAMES[f] for f in clashes], current)
            state = next_state(current, changes)
            check_admin_fields(viewer, current, state.changed)
            (stamp,) = await self._writer.apply([Update(recipe_id, current.version, state.set)])
            if stamp is not None:
                return state.result(stamp)
        raise DomainError("The recipe is changing too fast to merge; try again")

    async def purge_tombstones(self) -> int:
        """Delete tombstones older than the retention. The purge mark moves first, so a pull
        from a checkpoint below a deleted tombstone is always told to resync."""
        cutoff = time.time() * 1000 - self._retention.total_seconds() * 1000
        doomed = {"deleted": True, "stamp": {"$lt": cutoff}}
        newest = await self._recipes.find_one(doomed, {"stamp": 1}, sort=[("stamp", -1)])
        if newest is None:
            return 0
        await self._writer.mark_purged(float(newest["stamp"]))
        doomed["stamp"] = {"$lte": newest["stamp"]}
        result = await self._recipes.delete_many(doomed)
        return result.deleted_count


def _same_fields(state: SyncState, current: Recipe) -> bool:
    stored = stored_fields(current)
    return state.deleted == current.deleted and all(
        stored.get(name) == value for name, value in state.fields.items()
    )


def _purged(recipe_id: str, assumed: SyncState) -> Recipe:
    """A content-free tombstone for a recipe whose own tombstone is gone."""
    now = time.time() * 1000
    gone: Recipe = Recipe.model_construct(
        id=recipe_id,
        **blank_content(),
        owner_id=str(assumed.fields.get("owner_id", "")),
        version=(assumed.version or 0) + 1,
        created_at=stamp_time(now),
        updated_at=stamp_time(now),
        deleted=True,
        stamp=now,
        field_versions={},
        readers=[],
        revoked=[],
        audience=[],
        search_words=[],
    )
    return gone


def _clashes(current: Recipe, base_version: int, changes: dict[str, Any]) -> list[str]:
    """Fields the change touches that someone else changed after `base_version` to a
    different value (identical concurrent edits converge, they do not conflict). A field
    declared `merge=False` counts as changed by any later write to the recipe."""
    stored = stored_fields(current)
    return [
        name
        for name, value in changes.items()
        if _changed_at(current, name) > base_version and stored.get(name) != value
    ]


def _changed_at(current: Recipe, name: str) -> int:
    """The version at which field `name` last changed, as far as merging is concerned."""
    if not EDITABLE_BY_NAME[name].spec.merge:
        return current.version
    return current.field_versions.get(name, current.version)


def _merge(current: Recipe, assumed: SyncState, new: SyncState) -> dict[str, Any] | None:
    """Rebase a stale push: the fields the client changed (assumed -> new), if none of them
    was changed by someone else since; None when they clash or a deletion is involved."""
    if new.deleted or current.deleted or assumed.deleted or assumed.version is None:
        return None
    diff = {
        name: new.fields.get(name)
        for name in EDITABLE_FIELDS
        if name in new.fields and new.fields.get(name) != assumed.fields.get(name)
    }
    if _clashes(current, assumed.version, diff):
        return None
    return diff
