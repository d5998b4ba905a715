"""What the change feed publishes: one committed change to one recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.models.recipe import Access, Recipe, same_content

Operation = Literal["insert", "update", "replace", "delete"]


@dataclass(frozen=True, slots=True)
class RecipeEvent:
    op: Operation
    id: str
    before: Recipe | None  # the pre-image; None for inserts or when the database has none
    after: Recipe | None  # the post-image; None for deletes
    committed_at: datetime | None = None  # the change's wall time, for latency figures
    # Read once here, used for every subscriber the change is judged for:
    before_access: Access | None = field(init=False, repr=False, compare=False)
    after_access: Access | None = field(init=False, repr=False, compare=False)
    unchanged: bool = field(init=False, repr=False, compare=False)  # nothing a client sees

    def __post_init__(self) -> None:
        before, after = self.before, self.after
        object.__setattr__(self, "before_access", None if before is None else Access.of(before))
        object.__setattr__(self, "after_access", None if after is None else Access.of(after))
        unchanged = before is not None and after is not None and same_content(before, after)
        object.__setattr__(self, "unchanged", unchanged)
