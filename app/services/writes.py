"""The one write path: compare-and-set writes stamped in commit order.

Every write runs in a transaction that also advances a single clock document. Two writers
therefore always conflict on the clock, so the database serialises them: a write with a larger
`stamp` commits strictly after every write with a smaller one. Sync pulls rely on this (see
docs/sync.md). Within one process an asyncio lock queues writers, so the database only sees
contention between processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

STEP = 0.001  # ms between consecutive stamps
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


Op = Create | Update


class StampedWriter:
    def __init__(
        self,
        recipes: AsyncCollection[dict[str, Any]],
        clock: AsyncCollection[dict[str, Any]],
    ) -> None:
        self._recipes = recipes
        self._clock = clock
        self._lock = asyncio.Lock()

    async def committed_stamp(self) -> float:
        """The largest stamp handed out by a committed write: everything at or below it is
        committed (or was never written), so a pull may safely read up to it."""
        clock = await self._clock.find_one({"_id": CLOCK_ID})
        return float(clock["stamp"]) if clock and clock.get("stamp") is not None else 0.0

    async def apply(self, ops: Sequence[Op]) -> list[float | None]:
        """Apply `ops` in one transaction; per op, its stamp, or None if its compare-and-set
        found another version (or, for Create, an existing document)."""
        if not ops:
            return []
        async with self._lock, self._recipes.database.client.start_session() as session:

            async def run(session: AsyncClientSession) -> list[float | None]:
                return await self._apply(session, ops)

            result: list[float | None] = await session.with_transaction(run)
            return result

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
        results: list[float | None] = []
        for op, stamp in zip(ops, stamps, strict=True):
            when = stamp_time(stamp)
            if isinstance(op, Create):
                created = await self._recipes.update_one(
                    {"_id": op.id},
                    {
                        "$setOnInsert": {
                            **op.doc,
                            "stamp": stamp,
                            "created_at": when,
                            "updated_at": when,
                        }
                    },
                    upsert=True,
                    session=session,
                )
                results.append(stamp if created.upserted_id is not None else None)
            else:
                query: dict[str, Any] = {"_id": op.id, "version": op.expected_version}
                if op.alive_only:
                    query["deleted"] = False
                if op.expected_stamp is not None or op.unstamped:
                    query["stamp"] = op.expected_stamp
                updated = await self._recipes.update_one(
                    query,
                    {"$set": {**op.changes, "stamp": stamp, "updated_at": when}},
                    session=session,
                )
                results.append(stamp if updated.modified_count == 1 else None)
        return results
