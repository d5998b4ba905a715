"""schema.graphql is the contract: it must match the schema the server runs."""

from __future__ import annotations

from pathlib import Path

from app.schema import schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schema.graphql drifted: run `python -m app export-schema --out schema.graphql` "
        "and review the diff (names are public API)"
    )


def test_contract_names_from_the_issue_are_present() -> None:
    sdl = schema_sdl()
    for line in (
        "recipe(id: ID!): Recipe",
        "recipes(filter: RecipeFilter, first: Int = 20, after: String): RecipeConnection!",
        "me: Viewer!",
        "upsertRecipe(input: RecipeInput!): UpsertRecipeResult!",
        "deleteRecipe(id: ID!, expectedVersion: Int!): DeleteRecipeResult!",
        "union UpsertRecipeResult = Recipe | VersionConflict",
        "union DeleteRecipeResult = RecipeDeleted | VersionConflict",
        "scalar DateTime",
    ):
        assert line in sdl, line
