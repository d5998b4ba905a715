"""The editable recipe fields in GraphQL, derived from their one declaration
(`RecipeContent` in app/models/fields.py).

`@editable_fields(shape)` adds every editable field to a Strawberry type or input, before
`strawberry.type` / `strawberry.input` reads the class: the GraphQL type comes from the stored
Python type (nested models become their GraphQL types, user ids become `ID` outside sync
documents, inputs are optional), the name and description from the declaration.
`output_values` and `editable_values` convert the values between the stored and GraphQL forms.
`@built_from_input` lets Strawberry build such an input straight from the value graphql-core
has already coerced (no input object per field and per ingredient): the editable fields then
hold their stored form, which `editable_values` reads.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import strawberry
from pydantic import BaseModel
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from app.models import fields as declared
from app.models.fields import EDITABLE, EditableField

T = TypeVar("T")

Visibility = strawberry.enum(declared.Visibility, description="Who can read a recipe.")


@strawberry.type
class Ingredient:
    name: str
    quantity: float | None = None
    unit: str | None = None
    note: str | None = None


@strawberry.input
class IngredientInput:
    name: str
    quantity: float | None = strawberry.UNSET
    unit: str | None = strawberry.UNSET
    note: str | None = strawberry.UNSET


# Stored value types -> (GraphQL output type, GraphQL input type).
_VALUE_TYPES: dict[Any, tuple[type, type]] = {declared.Ingredient: (Ingredient, IngredientInput)}


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """Where the editable fields appear."""

    input: bool
    sync: bool = False  # an RxDB document: user ids are String, like every id there
    partial: bool = False  # every field optional, even those required at creation


OUTPUT = Shape(input=False)  # Recipe
SYNC_OUTPUT = Shape(input=False, sync=True)  # RecipeSyncDoc
INPUT = Shape(input=True)  # RecipeInput
SYNC_INPUT = Shape(input=True, sync=True)  # RecipeInputSyncDoc
PATCH = Shape(input=True, partial=True)  # RecipePatch


def editable_fields(
    shape: Shape, *, after: str | None = None, owner_only_after: str | None = None
) -> Callable[[type[T]], type[T]]:
    """Add the editable fields to the class after its field `after` (first when None), in
    declaration order; owner-only ones after `owner_only_after` if given (e.g. `owner_id`)."""
    content = [f for f in EDITABLE if not f.spec.owner_only]
    owner_only = [f for f in EDITABLE if f.spec.owner_only]
    placed: dict[str | None, list[EditableField]] = (
        {after: content + owner_only}
        if owner_only_after is None
        else {after: content, owner_only_after: owner_only}
    )

    def add(cls: type[T]) -> type[T]:
        declared_annotations: dict[str, Any] = inspect.get_annotations(cls)
        missing = {a for a in placed if a is not None} - set(declared_annotations)
        assert not missing, f"{cls.__name__} has no field {missing}"
        annotations: dict[str, Any] = {}
        for name in [None, *declared_annotations]:
            if name is not None:
                annotations[name] = declared_annotations[name]
            for field in placed.get(name, []):
                annotations[field.name] = _annotation(field, shape)
                setattr(cls, field.name, _strawberry_field(field, shape))
        cls.__annotations__ = annotations
        return cls

    return add


def _optional(field: EditableField, shape: Shape) -> bool:
    """Optional in this input (it may be left out): always, except a required field on a
    whole document."""
    return shape.input and (shape.partial or not field.required)


def _annotation(field: EditableField, shape: Shape) -> Any:
    graphql_type = _graphql_type(field.annotation, shape, user_ids=field.spec.user_ids)
    return graphql_type | None if _optional(field, shape) else graphql_type


def _graphql_type(python_type: Any, shape: Shape, *, user_ids: bool) -> Any:
    origin = get_origin(python_type)
    if origin is list:
        (item,) = get_args(python_type)
        return list[_graphql_type(item, shape, user_ids=user_ids)]  # type: ignore[misc]
    if origin in (Union, UnionType):
        parts = (_graphql_type(a, shape, user_ids=user_ids) for a in get_args(python_type))
        return functools.reduce(operator.or_, parts)
    if python_type is str and user_ids and not shape.sync:
        return strawberry.ID
    if python_type in _VALUE_TYPES:
        output_type, input_type = _VALUE_TYPES[python_type]
        return input_type if shape.input else output_type
    return python_type


def _strawberry_field(field: EditableField, shape: Shape) -> Any:
    name, description = field.graphql_name, field.spec.description
    if _optional(field, shape):
        return strawberry.field(name=name, description=description, default=strawberry.UNSET)
    return strawberry.field(name=name, description=description)


def output_values(recipe: declared.RecipeContent) -> dict[str, Any]:
    """The editable fields of a stored recipe as the GraphQL output types take them."""
    return {f.name: _output(getattr(recipe, f.name)) for f in EDITABLE}


def _output(value: Any) -> Any:
    if isinstance(value, list):
        return [_output(item) for item in value]
    if isinstance(value, BaseModel):
        output_type, _ = _VALUE_TYPES[type(value)]
        return output_type(**value.model_dump())
    return value


def editable_values(data: object) -> dict[str, Any]:
    """The editable fields the client sent (explicit nulls included), by stored name. For
    inputs made by `editable_fields` and `built_from_input`, which already hold the stored
    form (enums by value, nested inputs as dicts)."""
    assert getattr(type(data), _BUILT, False), f"{type(data).__name__}: not @built_from_input"
    return {
        f.name: value for f in EDITABLE if (value := getattr(data, f.name)) is not strawberry.UNSET
    }


_BUILT = "__larder_built_from_input__"


def built_from_input(cls: type[T]) -> type[T]:
    """Build instances of this Strawberry input (one made with `editable_fields`) without
    Strawberry's generic argument conversion, which instantiates an input object for it and
    for every nested input (each ingredient) only for `editable_values` to turn them back
    into plain values: about 0.2 ms of the ~1.4 ms of server CPU per upsert, measured.

    graphql-core has already validated and coerced the value (types, required fields, enum
    names to their values), so each editable field takes its stored form directly: scalars as
    they are, enums by value, nested inputs as dicts by stored name without the fields the
    client left out. The other fields (id, versions, ...) are converted as Strawberry would.
    A field the client left out keeps its default (UNSET); an explicit null stays None.
    """
    definition = get_object_definition(cls, strict=True)
    editable = {f.name: f.annotation for f in EDITABLE}
    defaults = {
        field.python_name: field.default
        for field in definition.fields
        if field.default is not dataclasses.MISSING
    }
    plans: dict[int, tuple[StrawberryConfig, list[_FieldPlan]]] = {}

    def plan(context: InputContext) -> list[_FieldPlan]:
        """Per field: GraphQL name, Python name, the conversion to its stored form (None for a
        field Strawberry converts) and its Strawberry type. Made once per schema
        configuration, which decides the GraphQL names (the entry holds the configuration,
        so its id is not reused while the entry exists)."""
        config = context.config
        cached = plans.get(id(config))
        if cached is not None and cached[0] is config:
            return cached[1]
        names = config.name_converter
        found = [
            (
                names.from_field(field),
                field.python_name,
                None
                if field.python_name not in editable
                else _converter(editable[field.python_name], names),
                field.resolve_type(type_definition=definition),
            )
            for field in definition.fields
        ]
        plans[id(config)] = (config, found)
        return found

    def from_input(target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        instance: Any = object.__new__(target)
        fields = instance.__dict__
        fields.update(defaults)
        for graphql_name, python_name, convert, field_type in plan(context):
            if graphql_name in value:
                sent = value[graphql_name]
                fields[python_name] = (
                    context.convert(sent, field_type, graphql_name)
                    if convert is None
                    else convert(sent)
                )
        return instance

    definition.from_input = from_input
    setattr(cls, _BUILT, True)
    return cls


Convert = Callable[[Any], Any]
_FieldPlan = tuple[str, str, Convert | None, Any]


def _converter(python_type: Any, names: NameConverter) -> Convert:
    """The conversion of a coerced GraphQL value of `python_type` to its stored form."""
    origin = get_origin(python_type)
    if origin is list:
        (item_type,) = get_args(python_type)
        item = _converter(item_type, names)
        return lambda value: None if value is None else [item(v) for v in value]
    if origin in (Union, UnionType):
        (inner,) = [a for a in get_args(python_type) if a is not type(None)]
        return _converter(inner, names)
    if python_type in _VALUE_TYPES:
        _, input_type = _VALUE_TYPES[python_type]
        fields = [
            (
                names.from_field(field),
                field.python_name,
                _converter(python_type.model_fields[field.python_name].annotation, names),
            )
            for field in get_object_definition(input_type, strict=True).fields
        ]

        def nested(value: Any) -> Any:
            if value is None:
                return None
            return {
                python_name: convert(value[graphql_name])
                for graphql_name, python_name, convert in fields
                if graphql_name in value
            }

        return nested
    return _same


def _same(value: Any) -> Any:
    return value
