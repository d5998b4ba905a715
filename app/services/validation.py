"""Limits on client-supplied recipe fields. Everything is checked before anything is written."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from app.models.recipe import Ingredient, Visibility
from app.services.errors import BadInput, FieldError

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_ITEMS = 200
MAX_ITEM_LENGTH = 5_000
MAX_TAGS = 50
MAX_TAG_LENGTH = 50
MAX_COLLABORATORS = 100
MAX_USER_ID = 256
MAX_URL = 2_048
SERVINGS = (1, 1_000)
MINUTES = (0, 10_000)

# Stored field name -> GraphQL field name, for error messages.
GRAPHQL_NAMES = {
    "prep_minutes": "prepMinutes",
    "cook_minutes": "cookMinutes",
    "image_url": "imageUrl",
}


def validate_id(value: str, field: str = "id") -> str:
    if not ID_PATTERN.fullmatch(value):
        raise BadInput.single(field, "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def validate_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise the provided (stored-name) fields; raise BadInput naming each bad one.

    `None` for a list or description means "empty"; for an optional scalar it clears it.
    """
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}

    def fail(name: str, message: str) -> None:
        errors.append(FieldError(GRAPHQL_NAMES.get(name, name), message))

    for name, value in fields.items():
        checker = _CHECKS.get(name)
        if checker is None:
            fail(name, "is not an editable field")
            continue
        try:
            clean[name] = checker(value)
        except _Invalid as exc:
            errors.append(FieldError(_path(name, exc.suffix), exc.message))
    if errors:
        raise BadInput(errors)
    return clean


class _Invalid(ValueError):
    def __init__(self, message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.suffix = suffix


def _path(name: str, suffix: str) -> str:
    return GRAPHQL_NAMES.get(name, name) + suffix


def _text(value: Any, *, min_len: int, max_len: int, suffix: str = "") -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string", suffix)
    if len(value) < min_len:
        raise _Invalid("must not be empty", suffix)
    if len(value) > max_len:
        raise _Invalid(f"must be at most {max_len} characters", suffix)
    return value


def _title(value: Any) -> str:
    if value is None:
        raise _Invalid("is required")
    return _text(value.strip() if isinstance(value, str) else value, min_len=1, max_len=MAX_TITLE)


def _description(value: Any) -> str:
    return "" if value is None else _text(value, min_len=0, max_len=MAX_DESCRIPTION)


def _list(value: Any, max_items: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid("must be a list")
    if len(value) > max_items:
        raise _Invalid(f"must have at most {max_items} items")
    return value


def _steps(value: Any) -> list[str]:
    return [
        _text(step, min_len=1, max_len=MAX_ITEM_LENGTH, suffix=f"[{i}]")
        for i, step in enumerate(_list(value, MAX_ITEMS))
    ]


def _tags(value: Any) -> list[str]:
    tags: list[str] = []
    for i, tag in enumerate(_list(value, MAX_TAGS)):
        text = _text(
            tag.strip() if isinstance(tag, str) else tag,
            min_len=1,
            max_len=MAX_TAG_LENGTH,
            suffix=f"[{i}]",
        )
        if text not in tags:
            tags.append(text)
    return tags


def _optional_text(value: Any, suffix: str) -> str | None:
    return (
        None if value is None else _text(value, min_len=0, max_len=MAX_ITEM_LENGTH, suffix=suffix)
    )


def _ingredients(value: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for i, raw in enumerate(_list(value, MAX_ITEMS)):
        item = raw.model_dump() if isinstance(raw, Ingredient) else raw
        if not isinstance(item, dict):
            raise _Invalid("must be an object", f"[{i}]")
        quantity = item.get("quantity")
        if quantity is not None and (
            not isinstance(quantity, int | float) or not math.isfinite(quantity) or quantity < 0
        ):
            raise _Invalid("must be a finite number >= 0", f"[{i}].quantity")
        result.append(
            {
                "name": _text(
                    (item.get("name") or "").strip(),
                    min_len=1,
                    max_len=MAX_ITEM_LENGTH,
                    suffix=f"[{i}].name",
                ),
                "quantity": None if quantity is None else float(quantity),
                "unit": _optional_text(item.get("unit"), f"[{i}].unit"),
                "note": _optional_text(item.get("note"), f"[{i}].note"),
            }
        )
    return result


def _bounded_int(bounds: tuple[int, int]) -> Any:
    low, high = bounds

    def check(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"must be an integer from {low} to {high}")
        return value

    return check


def _image_url(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value, min_len=1, max_len=MAX_URL)
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc or any(c.isspace() for c in text):
        raise _Invalid("must be an absolute http(s) URL")
    return text


def _collaborators(value: Any) -> list[str]:
    people: list[str] = []
    for i, person in enumerate(_list(value, MAX_COLLABORATORS)):
        text = _text(person, min_len=1, max_len=MAX_USER_ID, suffix=f"[{i}]")
        if text not in people:
            people.append(text)
    return people


def _visibility(value: Any) -> str:
    if value is None:
        return Visibility.PRIVATE.value
    try:
        return Visibility(value).value
    except ValueError as exc:
        raise _Invalid("must be PRIVATE or PUBLIC") from exc


_CHECKS: dict[str, Any] = {
    "title": _title,
    "description": _description,
    "ingredients": _ingredients,
    "steps": _steps,
    "tags": _tags,
    "servings": _bounded_int(SERVINGS),
    "prep_minutes": _bounded_int(MINUTES),
    "cook_minutes": _bounded_int(MINUTES),
    "image_url": _image_url,
    "collaborators": _collaborators,
    "visibility": _visibility,
}
