"""The editable recipe fields, declared once: `RecipeContent`.

Each field of `RecipeContent` is an editable field: its Python type and default are the stored
ones, and its `Editable` metadata says everything else (limits, GraphQL name and description,
whether it merges field by field, whether search finds it, whether only the owner may change
it). Everything else is derived from it: the stored model (`Recipe` inherits it), the GraphQL
types and inputs (app/schema/editable.py), validation (app/services/validation.py), creation
defaults, field versions and merges, the sync documents, change events and search terms.
Adding a field is one entry here (docs/architecture.md, "Adding a field").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from app.models.rules import (
    Choice,
    HttpUrl,
    IngredientList,
    IntRange,
    Rule,
    Text,
    TextList,
)


class Visibility(StrEnum):
    PRIVATE = "PRIVATE"
    PUBLIC = "PUBLIC"


class Ingredient(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    quantity: float | None = None
    unit: str | None = None
    note: str | None = None

    @property
    def search_text(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Editable:
    """What an editable field is besides its type and default."""

    rule: Rule
    description: str | None = None  # in the GraphQL schema
    graphql_name: str | None = None  # default: the name in camelCase
    merge: bool = True  # False: any concurrent change to the recipe clashes with a change to it
    searchable: bool = False  # its words are found by `filter.search`
    owner_only: bool = False  # only the owner (or an admin) may change it
    user_ids: bool = False  # user ids: GraphQL `ID` (String in sync documents)


class RecipeContent(BaseModel):
    """The editable fields of a recipe, in the order the GraphQL types list them (owner-only
    fields come after `ownerId` there)."""

    title: Annotated[str, Editable(Text(max_len=200, min_len=1, strip=True), searchable=True)]
    description: Annotated[str, Editable(Text(max_len=10_000))] = ""
    ingredients: Annotated[
        list[Ingredient],
        Editable(IngredientList(max_items=200, max_len=5_000), searchable=True),
    ] = []
    steps: Annotated[list[str], Editable(TextList(max_items=200, max_len=5_000))] = []
    tags: Annotated[
        list[str],
        Editable(TextList(max_items=50, max_len=50, strip=True, unique=True), searchable=True),
    ] = []
    servings: Annotated[int | None, Editable(IntRange(1, 1_000))] = None
    prep_minutes: Annotated[int | None, Editable(IntRange(0, 10_000))] = None
    cook_minutes: Annotated[int | None, Editable(IntRange(0, 10_000))] = None
    image_url: Annotated[str | None, Editable(HttpUrl(max_len=2_048))] = None
    cuisine: Annotated[
        str | None,
        Editable(
            Text(max_len=60, strip=True, empty_as_null=True),
            description="The cuisine, e.g. Thai or Italian (trimmed, up to 60 characters; "
            "empty means none). The recipe search finds its words.",
            searchable=True,
        ),
    ] = None
    collaborators: Annotated[
        list[str],
        Editable(TextList(max_items=100, max_len=256, unique=True), owner_only=True, user_ids=True),
    ] = []
    visibility: Annotated[Visibility, Editable(Choice(Visibility), owner_only=True)] = (
        Visibility.PRIVATE
    )


@dataclass(frozen=True)
class EditableField:
    """One field of `RecipeContent` with its declaration, as the derived code reads it."""

    name: str
    annotation: Any  # the stored Python type, e.g. `int | None`
    required: bool  # no default: must be given at creation, null is refused
    default: Any
    spec: Editable

    @property
    def graphql_name(self) -> str:
        return self.spec.graphql_name or _camel(self.name)

    def stored_default(self) -> Any:
        """The default as stored and compared (enums by value), a fresh copy."""
        return self.default.value if isinstance(self.default, Enum) else copy.copy(self.default)

    def blank(self) -> Any:
        """The field's value in a content-free tombstone: its default, or empty."""
        return self.annotation() if self.required else copy.copy(self.default)

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.annotation)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _declared() -> tuple[EditableField, ...]:
    fields = []
    for name, info in RecipeContent.model_fields.items():
        (spec,) = (m for m in info.metadata if isinstance(m, Editable))
        fields.append(
            EditableField(
                name=name,
                annotation=info.annotation,
                required=info.is_required(),
                default=None if info.is_required() else info.default,
                spec=spec,
            )
        )
    return tuple(fields)


EDITABLE: tuple[EditableField, ...] = _declared()
EDITABLE_BY_NAME = {f.name: f for f in EDITABLE}
EDITABLE_FIELDS = tuple(EDITABLE_BY_NAME)
OWNER_ONLY_FIELDS = frozenset(f.name for f in EDITABLE if f.spec.owner_only)
SEARCHABLE_FIELDS = frozenset(f.name for f in EDITABLE if f.spec.searchable)
"""Fields whose words search finds: a write that changes none of them keeps `search_words`."""
GRAPHQL_NAMES = {f.name: f.graphql_name for f in EDITABLE}
"""Stored field name -> GraphQL field name (error paths, merge conflicts)."""
CREATE_DEFAULTS = {f.name: f.stored_default() for f in EDITABLE if not f.required}


def blank_content() -> dict[str, Any]:
    """Every editable field emptied, for a tombstone that must not reveal the content."""
    return {f.name: f.blank() for f in EDITABLE}


def search_texts(fields: dict[str, Any]) -> list[str]:
    """The texts of the searchable fields among stored `fields` (missing ones: defaults)."""
    texts: list[str] = []
    for field in EDITABLE:
        if field.spec.searchable:
            value = field.adapter.validate_python(fields.get(field.name, field.default))
            texts += _texts(value)
    return texts


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    text: str = value.search_text
    return [text]
