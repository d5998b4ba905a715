"""Rebuilds an update's exact post-image from its pre-image and `updateDescription`.

`fullDocument: updateLookup` returns the document as it is when the event is read, which may
already include later changes; authorization must be decided on the state *at the change*.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def apply_update(before: Mapping[str, Any], description: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(dict(before))
    for path, value in description.get("updatedFields", {}).items():
        _set(doc, path.split("."), value)
    for path in description.get("removedFields", []):
        _unset(doc, path.split("."))
    for truncated in description.get("truncatedArrays", []) or []:
        parent = _walk(doc, truncated["field"].split("."))
        if isinstance(parent, list):
            del parent[truncated["newSize"] :]
    return doc


def _walk(node: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ValueError(f"cannot descend into {type(node).__name__} at {part!r}")
    return node


def _set(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    parent = _walk(doc, parts[:-1])
    key = parts[-1]
    if isinstance(parent, list):
        index = int(key)
        parent.extend([None] * (index + 1 - len(parent)))
        parent[index] = value
    else:
        parent[key] = value


def _unset(doc: dict[str, Any], parts: list[str]) -> None:
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, dict):
        parent.pop(parts[-1], None)
    elif isinstance(parent, list):
        parent[int(parts[-1])] = None
