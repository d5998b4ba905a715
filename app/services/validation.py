"""Limits on client-supplied recipe fields. Everything is checked before anything is written.

Each editable field declares its limits (app/models/fields.py, app/models/rules.py); this
module checks them. A null value means the field's default (or "is required").
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from app.models.fields import EDITABLE_BY_NAME, EditableField
from app.models.recipe import Ingredient
from app.models.rules import Choice, HttpUrl, IngredientList, IntRange, Text, TextList
from app.services.errors import BadInput, FieldError

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
    for name, value in fields.items():
        field = EDITABLE_BY_NAME.get(name)
        if field is None:
            errors.append(FieldError(name, "is not an editable field"))
            continue
        try:
            clean[name] = _check(field, value)
        except _Invalid as exc:
            errors.append(FieldError(field.graphql_name + exc.suffix, exc.message))
    if errors:
        raise BadInput(errors)
    return clean


class _Invalid(ValueError):
    def __init__(self, message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.suffix = suffix


def _check(field: EditableField, value: Any) -> Any:
    if value is None:
        if field.required:
            raise _Invalid("is required")
        return field.stored_default()
    rule = field.spec.rule
    match rule:
        case Text():
            return _text_rule(rule, value)
        case TextList():
            return _text_list(rule, value)
        case IntRange():
            return _int(rule, value)
        case HttpUrl():
            return _http_url(rule, value)
        case IngredientList():
            return _ingredients(rule, value)
        case Choice():
            return _choice(rule, value)


def _text(value: Any, *, min_len: int, max_len: int, suffix: str = "") -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string", suffix)
    if len(value) < min_len:
        raise _Invalid("must not be empty", suffix)
    if len(value) > max_len:
        raise _Invalid(f"must be at most {max_len} characters", suffix)
    return value


def _text_rule(rule: Text, value: Any) -> str | None:
    if rule.strip and isinstance(value, str):
        value = value.strip()
    if rule.empty_as_null and value == "":
        return None
    return _text(value, min_len=rule.min_len, max_len=rule.max_len)


def _list(value: Any, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid("must be a list")
    if len(value) > max_items:
        raise _Invalid(f"must have at most {max_items} items")
    return value


def _text_list(rule: TextList, value: Any) -> list[str]:
    texts: list[str] = []
    for i, item in enumerate(_list(value, rule.max_items)):
        text = _text(
            item.strip() if rule.strip and isinstance(item, str) else item,
            min_len=1,
            max_len=rule.max_len,
            suffix=f"[{i}]",
        )
        if not rule.unique or text not in texts:
            texts.append(text)
    return texts


def _optional_text(value: Any, max_len: int, suffix: str) -> str | None:
    return None if value is None else _text(value, min_len=0, max_len=max_len, suffix=suffix)


def _ingredients(rule: IngredientList, value: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for i, raw in enumerate(_list(value, rule.max_items)):
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
                    max_len=rule.max_len,
                    suffix=f"[{i}].name",
                ),
                "quantity": None if quantity is None else float(quantity),
                "unit": _optional_text(item.get("unit"), rule.max_len, f"[{i}].unit"),
                "note": _optional_text(item.get("note"), rule.max_len, f"[{i}].note"),
            }
        )
    return result


def _int(rule: IntRange, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not rule.low <= value <= rule.high:
        raise _Invalid(f"must be an integer from {rule.low} to {rule.high}")
    return value


def _http_url(rule: HttpUrl, value: Any) -> str:
    text = _text(value, min_len=1, max_len=rule.max_len)
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc or any(c.isspace() for c in text):
        raise _Invalid("must be an absolute http(s) URL")
    return text


def _choice(rule: Choice, value: Any) -> Any:
    try:
        return rule.enum(value).value
    except ValueError as exc:
        *others, last = (member.value for member in rule.enum)
        raise _Invalid(f"must be {', '.join(others)} or {last}") from exc
