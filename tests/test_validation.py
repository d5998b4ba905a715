"""Input limits: a clear BAD_USER_INPUT naming the field, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import UPSERT, Api, create

VALID: dict[str, Any] = {"title": "Valid"}

CASES: list[tuple[dict[str, Any], str]] = [
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"description": "x" * 10_001}, "description"),
    ({"ingredients": [{"name": "salt"}] * 201}, "ingredients"),
    ({"ingredients": [{"name": ""}]}, "ingredients[0].name"),
    ({"ingredients": [{"name": "x" * 5_001}]}, "ingredients[0].name"),
    ({"ingredients": [{"name": "salt", "quantity": -1}]}, "ingredients[0].quantity"),
    ({"ingredients": [{"name": "salt", "note": "x" * 5_001}]}, "ingredients[0].note"),
    ({"steps": ["mix"] * 201}, "steps"),
    ({"steps": ["ok", "x" * 5_001]}, "steps[1]"),
    ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
    ({"tags": ["x" * 51]}, "tags[0]"),
    ({"tags": [""]}, "tags[0]"),
    ({"servings": 0}, "servings"),
    ({"servings": 1_001}, "servings"),
    ({"prepMinutes": -1}, "prepMinutes"),
    ({"cookMinutes": 10_001}, "cookMinutes"),
    ({"imageUrl": "ftp://example.com/x.png"}, "imageUrl"),
    ({"imageUrl": "javascript:alert(1)"}, "imageUrl"),
    ({"imageUrl": "https://example.com/" + "x" * 2_048}, "imageUrl"),
    ({"collaborators": [f"u{i}" for i in range(101)]}, "collaborators"),
    ({"collaborators": [""]}, "collaborators[0]"),
    ({"id": "has spaces"}, "id"),
    ({"id": "x" * 65}, "id"),
]


@pytest.mark.parametrize(("fields", "field"), CASES, ids=[c[1] for c in CASES])
async def test_limit_is_enforced(api: Api, mongo: Any, fields: dict[str, Any], field: str) -> None:
    body = await api.gql(UPSERT, {"input": {**VALID, **fields}})
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert field in error["message"]
    assert await mongo.recipes.count_documents({}) == 0


async def test_invalid_update_changes_nothing(api: Api, mongo: Any) -> None:
    recipe = await create(api, title="Keep me", servings=2)
    body = await api.gql(
        UPSERT,
        {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "New", "servings": 5_000}},
    )
    assert body["errors"][0]["extensions"]["field"] == "servings"
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert (stored["title"], stored["servings"], stored["version"]) == ("Keep me", 2, 1)


async def test_every_bad_field_is_named(api: Api) -> None:
    body = await api.gql(UPSERT, {"input": {"title": "", "servings": 0, "tags": ["x" * 60]}})
    fields = {f["field"] for f in body["errors"][0]["extensions"]["fields"]}
    assert fields == {"title", "servings", "tags[0]"}


async def test_limits_at_the_boundary_are_accepted(api: Api) -> None:
    recipe = await create(
        api,
        id="x" * 64,
        title="t" * 200,
        description="d" * 10_000,
        ingredients=[{"name": f"i{i}", "quantity": 1.5, "unit": "g"} for i in range(200)],
        steps=["s" * 5_000] * 3,
        tags=[f"tag{i}" for i in range(50)],
        servings=1_000,
        prepMinutes=0,
        cookMinutes=10_000,
        imageUrl="https://example.com/p.png",
        collaborators=[f"user{i}" for i in range(100)],
    )
    assert len(recipe["ingredients"]) == 200 and recipe["servings"] == 1_000


async def test_wrong_types_are_rejected_by_the_schema(api: Api, mongo: Any) -> None:
    body = await api.gql(UPSERT, {"input": {"title": "x", "servings": "four"}})
    assert body["errors"] and body.get("data") is None
    assert await mongo.recipes.count_documents({}) == 0
