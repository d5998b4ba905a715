"""Bringing recipes stored by earlier versions up to the current stored form, at startup.

Recipes written before `search_words` carry `search_terms` (every prefix of every word) and
no words: each gets its words and loses the prefixes through the normal write path, a
compare-and-set on `{version, stamp}` (so a concurrent edit, or another process doing the
same, wins and the recipe is simply looked at again). The content and version do not change;
the recipe gets a new stamp, so sync clients pull it once more (and live streams skip it as
bookkeeping, like an adoption). Idempotent: with nothing left, it is one indexed query.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.models.recipe import search_words
from app.services.writes import MAX_BATCH, StampedWriter, Update

log = logging.getLogger("larder.migrate")


async def add_search_words(recipes: AsyncCollection[dict[str, Any]], writer: StampedWriter) -> int:
    """Derive `search_words` for recipes that lack it; returns how many were upgraded."""
    upgraded = 0
    while True:
        batch = await recipes.find(
            {"search_words": {"$exists": False}},
            {"search_terms": 0},
            limit=MAX_BATCH,
        ).to_list()
        ops = [
            Update(
                raw["_id"],
                raw["version"],
                {"search_words": search_words(raw)},
                alive_only=False,
                expected_stamp=raw.get("stamp"),
                unstamped=raw.get("stamp") is None,
                unset=("search_terms",),
            )
            for raw in batch
            if isinstance(raw.get("version"), int)
        ]
        if not ops:
            break
        done = sum(stamp is not None for stamp in await writer.apply(ops))
        if done == 0:  # only lost races (or unversioned foreign documents): try again later
            break
        upgraded += done
    if upgraded:
        log.info("added search words to recipes stored by an earlier version: %d", upgraded)
    return upgraded
