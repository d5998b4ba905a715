"""Who may do what with a recipe. The one set of rules for HTTP, WebSocket and sync."""

from __future__ import annotations

from typing import Any

from app.auth.principal import Principal
from app.models.recipe import PUBLIC_READER, Access, Recipe, Visibility


def can_read(viewer: Principal, recipe: Recipe | Access) -> bool:
    return (
        viewer.is_admin
        or recipe.visibility is Visibility.PUBLIC
        or viewer.id == recipe.owner_id
        or viewer.id in recipe.collaborators
    )


def can_edit(viewer: Principal, recipe: Recipe) -> bool:
    return viewer.is_admin or viewer.id == recipe.owner_id or viewer.id in recipe.collaborators


def can_administer(viewer: Principal, recipe: Recipe) -> bool:
    """Change collaborators/visibility, delete."""
    return viewer.is_admin or viewer.id == recipe.owner_id


def readable_filter(viewer: Principal) -> dict[str, Any]:
    """The MongoDB filter equivalent of `can_read` (uses the derived `readers` field)."""
    if viewer.is_admin:
        return {}
    return {"readers": {"$in": [viewer.id, PUBLIC_READER]}}
