"""Writes the demo set through the one write path (versions, stamps, search terms, feed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.auth.principal import Principal
from app.demo.data import RECIPES, DemoRecipe
from app.models.recipe import Recipe
from app.services.errors import DomainError
from app.services.recipes import RecipeService, RecipeWrite
from app.services.state import next_state
from app.services.validation import validate_fields


@dataclass(slots=True)
class DemoReport:
    created: int = 0
    restored: int = 0  # existed with other content (edited since): put back as version + 1
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # deleted, or the id is someone else's


async def load_demo(recipes: RecipeService, demo: tuple[DemoRecipe, ...] = RECIPES) -> DemoReport:
    """Create each demo recipe as its owner; idempotent: a recipe already as in the set is
    left alone (no new version, no change event)."""
    report = DemoReport()
    for item in demo:
        owner = Principal(item.owner)
        existing = await recipes.get(owner, item.id)  # None when absent (or deleted)
        if existing is not None and existing.owner_id != item.owner:
            report.skipped.append(item.id)
            continue
        if (
            existing is not None
            and not next_state(existing, validate_fields(item.fields())).changed
        ):
            report.unchanged += 1
            continue
        expected = None if existing is None else existing.version
        try:
            result = await recipes.upsert(owner, RecipeWrite(item.id, expected, item.fields()))
        except DomainError:  # the id is taken by a recipe the owner cannot read
            report.skipped.append(item.id)
            continue
        if not isinstance(result, Recipe):  # a tombstone (ids stay taken) or a race
            report.skipped.append(item.id)
        elif existing is None:
            report.created += 1
        else:
            report.restored += 1
    return report
