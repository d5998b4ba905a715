"""Turning GraphQL inputs into plain field values (stored names) for the services."""

from __future__ import annotations

from typing import Any

import strawberry

from app.models.fields import EDITABLE_FIELDS


def ingredient_values(items: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": i.name,
            **{
                k: getattr(i, k)
                for k in ("quantity", "unit", "note")
                if getattr(i, k) is not strawberry.UNSET
            },
        }
        for i in items
    ]


def editable_values(data: Any) -> dict[str, Any]:
    """The editable fields the client sent (explicit nulls included). Works for every input
    type whose attributes use the stored names (RecipeInput, RecipePatch, sync documents)."""
    fields: dict[str, Any] = {}
    for name in EDITABLE_FIELDS:
        value = getattr(data, name)
        if value is strawberry.UNSET:
            continue
        if name == "ingredients" and value is not None:
            value = ingredient_values(value)
        elif name == "collaborators" and value is not None:
            value = [str(c) for c in value]
        elif name == "visibility" and value is not None:
            value = value.value
        fields[name] = value
    return fields
