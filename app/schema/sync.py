"""RxDB-compatible replication (pull / push / stream) and field-level `patchRecipe`.

Field names here are what RxDB's GraphQL replication sends; keep them exactly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Hashable
from typing import Annotated, Any

import strawberry

from app.auth.principal import Principal
from app.auth.verifier import AuthError
from app.models.recipe import Recipe as RecipeModel
from app.realtime.events import RecipeEvent
from app.realtime.hub import SubscriptionEnded
from app.schema.context import Info
from app.schema.editable import (
    PATCH,
    SYNC_INPUT,
    SYNC_OUTPUT,
    built_from_input,
    editable_fields,
    editable_values,
    output_values,
)
from app.schema.errors import ClientError
from app.schema.fanout import Classify, Materialize
from app.schema.types import Recipe
from app.services import sync as service


@strawberry.type
@editable_fields(SYNC_OUTPUT, after="id", owner_only_after="owner_id")
class RecipeSyncDoc:
    id: str
    owner_id: str
    version: int
    updated_at: float = strawberry.field(description="ms since the epoch, server-assigned")
    deleted: bool = strawberry.field(name="_deleted")

    @classmethod
    def from_model(cls, r: RecipeModel) -> RecipeSyncDoc:
        return cls(
            id=r.id,
            owner_id=r.owner_id,
            version=r.version,
            updated_at=_stamp(r),
            deleted=r.deleted,
            **output_values(r),
        )


def _stamp(r: RecipeModel) -> float:
    return r.stamp if r.stamp is not None else r.updated_at.timestamp() * 1000


@strawberry.type
class RecipeCheckpoint:
    id: str
    updated_at: float


@strawberry.type
class RecipePullBulk:
    documents: list[RecipeSyncDoc]
    checkpoint: RecipeCheckpoint | None


@strawberry.input
class RecipeInputCheckpoint:
    id: str
    updated_at: float


@built_from_input
@strawberry.input(
    description="A document as the client has it. Server-owned fields "
    "(ownerId, version, updatedAt) are read for conflict detection only."
)
@editable_fields(SYNC_INPUT, after="id", owner_only_after="owner_id")
class RecipeInputSyncDoc:
    id: str
    owner_id: str | None = strawberry.UNSET
    version: int | None = strawberry.UNSET
    updated_at: float | None = strawberry.UNSET
    deleted: bool = strawberry.field(name="_deleted", default=False)


@strawberry.input
class RecipeInputPushRow:
    assumed_master_state: RecipeInputSyncDoc | None = strawberry.UNSET
    new_document_state: RecipeInputSyncDoc


@strawberry.input
class RecipeInputHeaders:
    authorization: str | None = strawberry.UNSET


@built_from_input
@strawberry.input(description="Every editable field, all optional: only those sent change.")
@editable_fields(PATCH)
class RecipePatch:
    pass


@strawberry.type(description="The patch touched fields someone else changed since baseVersion.")
class MergeConflict:
    id: strawberry.ID
    fields: list[str]
    current: Recipe


PatchRecipeResult = Annotated[Recipe | MergeConflict, strawberry.union("PatchRecipeResult")]


def _state(doc: RecipeInputSyncDoc) -> service.SyncState:
    version = None if doc.version is strawberry.UNSET else doc.version
    return service.SyncState(
        fields=editable_values(doc), version=version, deleted=bool(doc.deleted)
    )


def _bulk(documents: list[RecipeModel], checkpoint: service.Checkpoint | None) -> RecipePullBulk:
    return RecipePullBulk(
        documents=[RecipeSyncDoc.from_model(d) for d in documents],
        checkpoint=None
        if checkpoint is None
        else RecipeCheckpoint(id=checkpoint.id, updated_at=checkpoint.updated_at),
    )


@strawberry.type
class SyncQuery:
    @strawberry.field(
        description="Changes after `checkpoint` in sync order (tombstones "
        "included). Omit the checkpoint for the first pull."
    )
    async def pull_recipe(
        self,
        info: Info,
        *,
        checkpoint: RecipeInputCheckpoint | None = strawberry.UNSET,
        limit: int,
    ) -> RecipePullBulk:
        since = None
        if checkpoint:
            since = service.Checkpoint(id=checkpoint.id, updated_at=checkpoint.updated_at)
        documents, last = await info.context.sync.pull(info.context.viewer(), since, limit)
        return _bulk(documents, last)


@strawberry.type
class SyncMutation:
    @strawberry.mutation(
        description="Apply client changes; returns the master state of each "
        "conflicting row (empty when everything applied)."
    )
    async def push_recipe(
        self, info: Info, recipe_push_row: list[RecipeInputPushRow | None] | None = strawberry.UNSET
    ) -> list[RecipeSyncDoc]:
        rows = [
            service.PushRow(
                assumed=None
                if row.assumed_master_state in (None, strawberry.UNSET)
                else _state(row.assumed_master_state),
                new=_state(row.new_document_state),
                id=row.new_document_state.id,
            )
            for row in recipe_push_row or ()
            if row is not None
        ]
        conflicts = await info.context.sync.push(info.context.guard_mutation(), rows)
        info.context.conflict("pushRecipe", len(conflicts))
        return [RecipeSyncDoc.from_model(c) for c in conflicts]

    @strawberry.mutation(
        description="Change some fields of a recipe as of `baseVersion`; "
        "merges with concurrent edits of other fields."
    )
    async def patch_recipe(
        self, info: Info, id: strawberry.ID, base_version: int, patch: RecipePatch
    ) -> PatchRecipeResult:
        result = await info.context.sync.patch(
            info.context.guard_mutation(), str(id), base_version, editable_values(patch)
        )
        if isinstance(result, service.MergeConflict):
            info.context.conflict("patchRecipe")
            return MergeConflict(
                id=strawberry.ID(result.id),
                fields=result.fields,
                current=Recipe.from_model(result.current),
            )
        return Recipe.from_model(result)


@strawberry.type
class SyncSubscription:
    @strawberry.subscription(description="Every change the viewer may read, as pull bulks.")
    async def stream_recipe(
        self, info: Info, headers: RecipeInputHeaders | None = strawberry.UNSET
    ) -> AsyncGenerator[RecipePullBulk, None]:
        viewer = info.context.viewer()
        if headers and headers.authorization:
            try:
                viewer = await info.context.services.authenticate(headers.authorization)
            except AuthError as error:
                raise ClientError(error.message, "UNAUTHENTICATED") from error

        def select(event: Any) -> RecipeModel | None:
            return service.stream_view(viewer, event)

        async with info.context.hub.subscribe(select, replay=True) as subscription:
            try:
                async for recipe in subscription:
                    batch = [recipe, *subscription.take_ready()]
                    last = batch[-1]
                    yield _bulk(batch, service.Checkpoint(id=last.id, updated_at=_stamp(last)))
            except SubscriptionEnded as ended:
                raise ClientError(str(ended), ended.code) from ended


def stream_recipe_fanout(viewer: Principal) -> tuple[Classify, Materialize, Hashable]:
    """The grouped fan-out's view of `streamRecipe` (see app/schema/fanout.py): classifier,
    materializer and audience (what the classifier's answer depends on besides the event)."""

    def classify(event: RecipeEvent) -> Hashable | None:
        return service.classify_stream(viewer, event)

    def materialize(event: RecipeEvent, answer: Any) -> RecipePullBulk:
        recipe = service.materialize_stream(event, answer)
        return _bulk([recipe], service.Checkpoint(id=recipe.id, updated_at=_stamp(recipe)))

    return classify, materialize, (viewer.id, viewer.roles)
