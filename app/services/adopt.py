"""Adopting writes made by other programs (e.g. a Node API writing to MongoDB directly).

Such writes reach live subscribers through the change stream as they are, but they carry no
sync stamp (or keep the old one) and may leave the derived fields (`readers`, `audience`,
`search_words`) stale. Every server process watches for them and re-stamps them through the
normal write path, recomputing the derived fields; the compare-and-set on `{version, stamp}`
makes sure only one process adopts each write, and the adoption itself carries a new stamp,
so it is not adopted again.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import PyMongoError

from app.models.fields import EDITABLE_FIELDS
from app.models.recipe import derived_fields
from app.realtime.events import RecipeEvent
from app.realtime.hub import Hub, SubscriptionEnded
from app.services.state import stored_fields
from app.services.writes import StampedWriter, Update

log = logging.getLogger("larder.adopt")


def needs_adoption(event: RecipeEvent) -> RecipeEvent | None:
    after = event.after
    if after is None:
        return None
    if after.stamp is None:
        return event
    if event.before is not None and event.before.stamp == after.stamp:
        return event
    return None


async def adopt(writer: StampedWriter, event: RecipeEvent) -> bool:
    after = event.after
    assert after is not None
    stored = stored_fields(after)
    previous = None if event.before is None else stored_fields(event.before)
    versions = dict(after.field_versions)
    for name in EDITABLE_FIELDS:
        if previous is None or previous.get(name) != stored.get(name) or name not in versions:
            versions[name] = after.version
    changes: dict[str, Any] = {
        "field_versions": versions,
        **derived_fields(stored, previous=previous),
    }
    op = Update(
        after.id,
        after.version,
        changes,
        alive_only=False,
        expected_stamp=after.stamp,
        unstamped=after.stamp is None,
    )
    (stamp,) = await writer.apply([op])
    if stamp is not None:
        log.info("adopted a write made outside Larder", extra={"recipe_id": after.id})
    return stamp is not None


async def adopt_foreign_writes(hub: Hub, writer: StampedWriter) -> None:
    """Runs for the life of the process (cancelled at shutdown)."""
    while True:
        try:
            async with hub.subscribe(needs_adoption, internal=True) as foreign:
                async for event in foreign:
                    try:
                        await adopt(writer, event)
                    except PyMongoError as exc:
                        log.warning("could not adopt a foreign write: %s", exc)
        except SubscriptionEnded:
            log.warning("fell behind adopting foreign writes; catching up from now")
