"""What the change feed publishes: one committed change to one recipe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.models.recipe import Recipe

Operation = Literal["insert", "update", "replace", "delete"]


@dataclass(frozen=True, slots=True)
class RecipeEvent:
    op: Operation
    id: str
    before: Recipe | None  # the pre-image; None for inserts or when the database has none
    after: Recipe | None  # the post-image; None for deletes
    committed_at: datetime | None = None  # the change's wall time, for latency figures
