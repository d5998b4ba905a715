"""What a client sends is what is stored, however it is sent: inline literals or variables,
nested ingredients with fields left out or set to null, enums, patches and RxDB pushes.
Inputs are built straight from graphql-core's coerced values (`built_from_input` in
app/schema/editable.py), so these pin that conversion to the stored form."""

from __future__ import annotations

from typing import Any

from tests.support import Api

UPSERT = """mutation Upsert($input: RecipeInput!) {
  upsertRecipe(input: $input) { __typename ... on Recipe { id version } } }"""

INGREDIENTS = [
    {"name": "flour", "quantity": 250, "unit": "g", "note": "sifted"},
    {"name": "salt"},  # every optional field left out
    {"name": "milk", "quantity": None, "unit": None, "note": None},  # explicit nulls
]
STORED_INGREDIENTS = [
    {"name": "flour", "quantity": 250.0, "unit": "g", "note": "sifted"},
    {"name": "salt", "quantity": None, "unit": None, "note": None},
    {"name": "milk", "quantity": None, "unit": None, "note": None},
]
BREAD = {
    "title": "Bread",
    "steps": ["Mix", "Bake"],
    "tags": ["baking"],
    "servings": 2,
    "visibility": "PUBLIC",
    "cuisine": None,
}


def stored_content(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("title", "ingredients", "steps", "tags", "servings", "visibility", "cuisine")
    return {key: doc.get(key) for key in keys}


async def test_variables_and_inline_literals_store_the_same(api: Api, mongo: Any) -> None:
    sent = {**BREAD, "ingredients": INGREDIENTS}
    made = await api.data(UPSERT, {"input": {"id": "by-variables", **sent}})
    assert made["upsertRecipe"] == {"__typename": "Recipe", "id": "by-variables", "version": 1}
    literal = """mutation { upsertRecipe(input: {
      id: "by-literal", title: "Bread", steps: ["Mix", "Bake"], tags: ["baking"], servings: 2,
      visibility: PUBLIC, cuisine: null,
      ingredients: [{name: "flour", quantity: 250, unit: "g", note: "sifted"}, {name: "salt"},
                    {name: "milk", quantity: null, unit: null, note: null}]
    }) { __typename } }"""
    assert (await api.data(literal))["upsertRecipe"] == {"__typename": "Recipe"}

    expected = {**BREAD, "ingredients": STORED_INGREDIENTS}
    for rid in ("by-variables", "by-literal"):
        assert stored_content(await mongo.recipes.find_one({"_id": rid})) == expected


async def test_left_out_fields_are_kept_and_nulls_clear(api: Api, mongo: Any) -> None:
    await api.data(UPSERT, {"input": {"id": "r", "title": "Soup", "servings": 4, "tags": ["a"]}})
    changed = await api.data(
        UPSERT, {"input": {"id": "r", "expectedVersion": 1, "title": "Soup", "servings": None}}
    )
    assert changed["upsertRecipe"]["version"] == 2
    doc = await mongo.recipes.find_one({"_id": "r"})
    assert (doc["servings"], doc["tags"]) == (None, ["a"])  # null cleared, left out kept

    patch = """mutation($patch: RecipePatch!) { patchRecipe(id: "r", baseVersion: 2,
      patch: $patch) { __typename ... on Recipe { version } } }"""
    patched = await api.data(patch, {"patch": {"ingredients": INGREDIENTS[1:], "tags": None}})
    assert patched["patchRecipe"] == {"__typename": "Recipe", "version": 3}
    doc = await mongo.recipes.find_one({"_id": "r"})
    assert (doc["ingredients"], doc["tags"], doc["title"]) == (STORED_INGREDIENTS[1:], [], "Soup")


async def test_a_pushed_sync_document_is_stored_as_sent(api: Api, mongo: Any) -> None:
    push = """mutation($rows: [RecipeInputPushRow!]) { pushRecipe(recipePushRow: $rows) { id } }"""
    doc = {"id": "pushed", "title": "Stew", "ingredients": INGREDIENTS, "visibility": "PRIVATE"}
    conflicts = await api.data(push, {"rows": [{"newDocumentState": doc}]})
    assert conflicts["pushRecipe"] == []
    stored = await mongo.recipes.find_one({"_id": "pushed"})
    assert (stored["ingredients"], stored["visibility"], stored["deleted"]) == (
        STORED_INGREDIENTS,
        "PRIVATE",
        False,
    )
