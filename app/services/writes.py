"""The one write path: compare-and-set writes stamped in commit order.

Every write runs in a transaction that also advances a single clock document. Two writers
therefore always conflict on the clock, so the database serialises them: a write with a larger
`stamp` commits strictly after every write with a smaller one. Sync pulls rely on this (see
docs/sync.md). Within one process, concurrent writes are group-committed (one transaction at a
time, carrying every write that queued meanwhile), so the database only sees contention
between processes.

All of a process's transactions run on one session, announced in a writer lease first
(lease.py): if the process dies inside a transaction, the others kill that session within a
few seconds instead of conflicting on the clock until the transaction's lifetime limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from app.services.lease import WriterLease

STEP = 0.001  # ms between consecutive stamps
MAX_BATCH = 64  # ops per group-commit transaction
CLOCK_ID = "recipes"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp_time(stamp: float) -> datetime:
    """The `updated_at` of a stamp: the same instant at MongoDB's millisecond precision."""
    return _EPOCH + timedelta(milliseconds=int(stamp))


@dataclass(frozen=True, slots=True)
class Create:
    id: str
    doc: dict[str, Any]  # every stored field but _id, stamp, created_at, updated_at


@dataclass(frozen=True, slots=True)
class Update:
    id: str
    expected_version: int
    changes: dict[str, Any]  # the $set, version included; stamp and updated_at are added
    alive_only: bool = True  # refuse to touch a tombstone
    expected_stamp: float | None = None  # also require this stamp (adopting foreign writes)
    unstamped: bool = False  # also require that there is no stamp yet
    unset: tuple[str, ...] = ()  # fields to remove (retired stored fields, see migrate.py)


Op = Create | Update


class StampedWriter:
    def __init__(
        self,
        recipes: AsyncCollection[dict[str, Any]],
        clock: AsyncCollection[dict[str, Any]],
        lease: WriterLease,
    ) -> None:
        self._recipes = recipes
        self._clock = clock
        self._lease = lease
        self._session: AsyncClientSession | None = None
        self._pending: list[tuple[list[Op], asyncio.Future[list[float | None]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def clock(self) -> tuple[float, float]:
        """(committed, purged): the largest stamp handed out by a committed write (everything
        at or below it is committed, so a pull may read up to it), and the largest stamp of a
        purged tombstone (checkpoints below it may have missed a deletion)."""
        clock = await self._clock.find_one({"_id": CLOCK_ID}) or {}
        return float(clock.get("stamp") or 0.0), float(clock.get("purged") or 0.0)

    async def mark_purged(self, stamp: float) -> None:
        """Record, before deleting them, that tombstones up to `stamp` are going away."""
        await self._clock.update_one({"_id": CLOCK_ID}, {"$max": {"purged": stamp}}, upsert=True)

    async def apply(self, ops: Sequence[Op]) -> list[float | None]:
        """Apply `ops` atomically; per op, its stamp, or None if its compare-and-set found
        another version (or, for Create, an existing document).

        Concurrent callers are committed together (group commit): while one transaction runs,
        new requests queue, and the next transaction takes them all, so the database sees one
        clock update and one bulk write per batch instead of per request.
        """
        if not ops:
            return []
        future: asyncio.Future[list[float | None]] = asyncio.get_running_loop().create_future()
        self._pending.append((list(ops), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._take_batch()
            ops = [op for request, _ in batch for op in request]
            try:
                results = await self._commit(ops)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            start = 0
            for request, future in batch:
                if not future.done():
                    future.set_result(results[start : start + len(request)])
                start += len(request)

    def _take_batch(self) -> list[tuple[list[Op], asyncio.Future[list[float | None]]]]:
        """Whole requests, up to MAX_BATCH ops, never two ops on one recipe (so each op's
        success can be read back from its own stamp)."""
        batch: list[tuple[list[Op], asyncio.Future[list[float | None]]]] = []
        ids: set[str] = set()
        size = 0
        for entry in list(self._pending):
            request, future = entry
            request_ids = {op.id for op in request}
            if batch and (size + len(request) > MAX_BATCH or request_ids & ids):
                continue
            self._pending.remove(entry)
            if future.cancelled():
                continue
            batch.append(entry)
            ids |= request_ids
            size += len(request)
        return batch

    async def _commit(self, ops: Sequence[Op]) -> list[float | None]:
        session = await self._transaction_session()

        async def run(session: AsyncClientSession) -> list[float | None]:
            return await self._apply(session, ops)

        try:
            result: list[float | None] = await session.with_transaction(run)
        except BaseException:
            # The session may be unusable now (killed by a reaper, the database restarted):
            # the next batch starts, and announces, a fresh one.
            await self.close_session()
            raise
        return result

    async def _transaction_session(self) -> AsyncClientSession:
        if self._session is None:
            session = self._recipes.database.client.start_session()
            try:
                await self._lease.register(dict(session.session_id))
            except BaseException:
                await session.end_session()
                raise
            self._session = session
        return self._session

    async def close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.end_session()

    async def _reserve(self, session: AsyncClientSession, count: int) -> list[float]:
        now = time.time() * 1000
        clock = await self._clock.find_one_and_update(
            {"_id": CLOCK_ID},
            [
                {
                    "$set": {
                        "stamp": {
                            "$max": [
                                now + STEP * (count - 1),
                                {"$add": [{"$ifNull": ["$stamp", 0]}, STEP * count]},
                            ]
                        }
                    }
                }
            ],
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert clock is not None  # upsert with ReturnDocument.AFTER always returns it
        last = float(clock["stamp"])
        return [last - STEP * (count - 1 - i) for i in range(count)]

    async def _apply(self, session: AsyncClientSession, ops: Sequence[Op]) -> list[float | None]:
        stamps = await self._reserve(session, len(ops))
        writes: list[UpdateOne] = []
        for op, stamp in zip(ops, stamps, strict=True):
            when = stamp_time(stamp)
            if isinstance(op, Create):
                fields = {**op.doc, "stamp": stamp, "created_at": when, "updated_at": when}
                writes.append(UpdateOne({"_id": op.id}, {"$setOnInsert": fields}, upsert=True))
            else:
                query: dict[str, Any] = {"_id": op.id, "version": op.expected_version}
                if op.alive_only:
                    query["deleted"] = False
                if op.expected_stamp is not None or op.unstamped:
                    query["stamp"] = op.expected_stamp
                changes = {**op.changes, "stamp": stamp, "updated_at": when}
                update: dict[str, Any] = {"$set": changes}
                if op.unset:
                    update["$unset"] = dict.fromkeys(op.unset, "")
                writes.append(UpdateOne(query, update))
        outcome = await self._recipes.bulk_write(writes, ordered=True, session=session)
        if outcome.modified_count + outcome.upserted_count == len(ops):
            return list(stamps)
        # Some compare-and-sets found another version: an op applied iff its recipe now
        # carries the op's own (unique) stamp. One op per recipe per batch makes this exact.
        applied = {
            doc["_id"]: doc.get("stamp")
            async for doc in self._recipes.find(
                {"_id": {"$in": [op.id for op in ops]}}, {"stamp": 1}, session=session
            )
        }
        return [
            stamp if applied.get(op.id) == stamp else None
            for op, stamp in zip(ops, stamps, strict=True)
        ]
