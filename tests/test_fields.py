"""The editable fields are declared once (app/models/fields.py): every GraphQL type that lists
recipe fields carries each of them, with the nullability its role needs."""

from __future__ import annotations

from typing import get_args

from graphql import GraphQLInputObjectType, GraphQLNonNull, GraphQLObjectType
from graphql import build_schema as parse_sdl

from app.models.fields import CREATE_DEFAULTS, EDITABLE
from app.models.recipe import Recipe
from app.schema import schema_sdl

SCHEMA = parse_sdl(schema_sdl())


def _fields(type_name: str) -> dict[str, bool]:
    """GraphQL field name -> non-null, for an object or input type."""
    named = SCHEMA.type_map[type_name]
    assert isinstance(named, GraphQLObjectType | GraphQLInputObjectType)
    return {name: isinstance(f.type, GraphQLNonNull) for name, f in named.fields.items()}


def test_outputs_carry_every_editable_field_non_null_unless_optional() -> None:
    for type_name in ("Recipe", "RecipeSyncDoc"):
        fields = _fields(type_name)
        for field in EDITABLE:
            optional = type(None) in get_args(field.annotation)
            assert fields[field.graphql_name] is not optional, (type_name, field.name)


def test_inputs_carry_every_editable_field_required_only_at_creation() -> None:
    for type_name, partial in (
        ("RecipeInput", False),
        ("RecipeInputSyncDoc", False),
        ("RecipePatch", True),
    ):
        fields = _fields(type_name)
        for field in EDITABLE:
            required = field.required and not partial
            assert fields[field.graphql_name] is required, (type_name, field.name)
    assert set(_fields("RecipePatch")) == {f.graphql_name for f in EDITABLE}


def test_the_stored_model_and_defaults_follow_the_declaration() -> None:
    for field in EDITABLE:
        assert field.name in Recipe.model_fields
        assert (field.name in CREATE_DEFAULTS) is not field.required
