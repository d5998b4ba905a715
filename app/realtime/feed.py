"""One change-stream reader per process, resuming from its last token after failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from app.models.recipe import Recipe
from app.realtime.events import RecipeEvent
from app.realtime.hub import Hub
from app.realtime.postimage import apply_update

log = logging.getLogger("larder.feed")

# Resuming is impossible: the token fell out of the oplog, or is not valid for this stream.
_HISTORY_LOST = {280, 286, 260}
_OPERATIONS = {"insert", "update", "replace", "delete"}


class ChangeFeed:
    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        hub: Hub,
        *,
        max_backoff: float = 5.0,
        observe_lag: Callable[[float], None] | None = None,
    ) -> None:
        self._observe_lag = observe_lag
        self._collection = collection
        self._hub = hub
        self._max_backoff = max_backoff
        self._stream: AsyncChangeStream[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pre_images = True
        self.resume_token: Mapping[str, Any] | None = None
        self.connected = asyncio.Event()
        self.restarts = 0

    async def enable_pre_images(self) -> None:
        """Ask the database to keep pre-images (MongoDB 6+, SecantusDB). Without them access
        revocations cannot be detected, so say so loudly."""
        try:
            await self._collection.database.command(
                {
                    "collMod": self._collection.name,
                    "changeStreamPreAndPostImages": {"enabled": True},
                }
            )
        except PyMongoError as exc:
            self._pre_images = False
            log.warning(
                "change-stream pre-images unavailable (%s): subscribers losing access to a "
                "recipe will not be told to drop it",
                exc,
            )

    async def start(self) -> None:
        """Open the stream before returning, so every change committed afterwards is seen."""
        await self.enable_pre_images()
        self._stream = await self._open()
        self.connected.set()
        self._task = asyncio.create_task(self._run(), name="larder-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_stream()

    async def _open(self) -> AsyncChangeStream[dict[str, Any]]:
        options: dict[str, Any] = {}
        if self._pre_images:
            # Post-images are rebuilt from the pre-image (exact, and no lookup per event).
            options["full_document_before_change"] = "whenAvailable"
        else:
            options["full_document"] = "updateLookup"
        if self.resume_token is not None:
            options["resume_after"] = self.resume_token
        return await self._collection.watch(**options)

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            # The stream's token advances on every batch, events or not (postBatchResumeToken):
            # resuming from it misses nothing even if no event had arrived yet.
            if stream.resume_token is not None:
                self.resume_token = stream.resume_token
            with contextlib.suppress(PyMongoError):
                await stream.close()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self._stream is None:
                    self._stream = await self._open()
                    self.connected.set()
                    log.info("change feed resumed", extra={"restarts": self.restarts})
                async for change in self._stream:
                    self.resume_token = self._stream.resume_token
                    await self._dispatch(change)
                    backoff = 0.1
                # The stream ended (collection dropped or invalidated): reopen.
                await self._close_stream()
            except OperationFailure as exc:
                await self._close_stream()
                if exc.code in _HISTORY_LOST:
                    log.error("change feed cannot resume (%s); subscribers must refetch", exc)
                    self._stream = None
                    self.resume_token = None
                    self._hub.reset("The change feed lost its position; refetch and resubscribe")
                    await self._pause(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                else:
                    log.warning("change feed failed: %s", exc)
                    await self._pause(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
            except PyMongoError as exc:
                await self._close_stream()
                log.warning("change feed interrupted, resuming: %s", exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _pause(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # pymongo can turn a cancellation that lands inside one of its awaits into a
            # network error: stop() asked us to end, so end instead of reconnecting forever.
            raise asyncio.CancelledError
        self.connected.clear()
        self.restarts += 1
        await asyncio.sleep(seconds)

    async def _dispatch(self, change: Mapping[str, Any]) -> None:
        op = change.get("operationType")
        if op not in _OPERATIONS:
            return
        if (
            op == "update"
            and not change.get("fullDocumentBeforeChange")
            and not change.get("fullDocument")
        ):
            # No pre-image for this one (written before pre-images were enabled): look the
            # document up, as updateLookup would.
            key = change["documentKey"]["_id"]
            change = {**change, "fullDocument": await self._collection.find_one({"_id": key})}
        try:
            event = _event(change)
        except (ValidationError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.error(
                "skipping a change the model cannot read",
                extra={
                    "recipe_id": str(change.get("documentKey", {}).get("_id")),
                    "error": str(exc)[:300],
                },
            )
            return
        if self._observe_lag is not None and event.committed_at is not None:
            lag = (datetime.now(UTC) - event.committed_at).total_seconds()
            self._observe_lag(max(0.0, lag))
        self._hub.publish(event)


def _event(change: Mapping[str, Any]) -> RecipeEvent:
    op = change["operationType"]
    raw_before = change.get("fullDocumentBeforeChange")
    if op == "update" and raw_before is not None:
        raw_after: Mapping[str, Any] | None = apply_update(raw_before, change["updateDescription"])
    else:
        raw_after = change.get("fullDocument") if op != "delete" else None
    return RecipeEvent(
        op=op,
        id=str(change["documentKey"]["_id"]),
        before=None if raw_before is None else Recipe.model_validate(raw_before),
        after=None if raw_after is None else Recipe.model_validate(raw_after),
        committed_at=change.get("wallTime"),
    )
