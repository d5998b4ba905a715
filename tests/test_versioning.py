"""Version semantics: created at 1, +1 per change, compare-and-set, tombstones."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support import DELETE, GET, UPSERT, Api, create


async def test_create_starts_at_version_1_with_server_owned_fields(api: Api, mongo: Any) -> None:
    recipe = await create(api, user="alice", title="Soup", tags=["dinner"])
    assert recipe["version"] == 1
    assert recipe["ownerId"] == "alice"
    assert recipe["deleted"] is False
    assert recipe["createdAt"] == recipe["updatedAt"]
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert stored["version"] == 1 and stored["owner_id"] == "alice"


async def test_client_generated_id_is_kept(api: Api) -> None:
    recipe = await create(api, id="offline-id_01", title="Offline")
    assert recipe["id"] == "offline-id_01"


async def test_each_change_adds_exactly_one(api: Api) -> None:
    recipe = await create(api)
    for expected in (1, 2, 3):
        data = await api.data(
            UPSERT,
            {
                "input": {
                    "id": recipe["id"],
                    "expectedVersion": expected,
                    "title": f"v{expected + 1}",
                }
            },
        )
        updated = data["upsertRecipe"]
        assert updated["__typename"] == "Recipe"
        assert updated["version"] == expected + 1
        assert updated["title"] == f"v{expected + 1}"
        assert updated["createdAt"] == recipe["createdAt"]
        assert updated["updatedAt"] >= recipe["updatedAt"]


async def test_update_keeps_fields_not_sent_and_clears_explicit_nulls(api: Api) -> None:
    recipe = await create(api, title="Bread", servings=4, tags=["baking"], prepMinutes=20)
    data = await api.data(
        UPSERT,
        {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "Bread 2", "servings": None}},
    )
    updated = data["upsertRecipe"]
    assert updated["servings"] is None
    assert updated["tags"] == ["baking"]
    assert updated["prepMinutes"] == 20


async def test_stale_version_changes_nothing_and_returns_current(api: Api, mongo: Any) -> None:
    recipe = await create(api)
    await api.data(UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "B"}})
    data = await api.data(
        UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "lost edit"}}
    )
    conflict = data["upsertRecipe"]
    assert conflict["__typename"] == "VersionConflict"
    assert conflict["expectedVersion"] == 1
    assert conflict["currentVersion"] == 2
    assert conflict["current"]["title"] == "B"
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert stored["title"] == "B" and stored["version"] == 2


async def test_existing_id_without_expected_version_is_a_conflict(api: Api) -> None:
    recipe = await create(api, id="fixed-id")
    data = await api.data(UPSERT, {"input": {"id": "fixed-id", "title": "overwrite?"}})
    conflict = data["upsertRecipe"]
    assert conflict["__typename"] == "VersionConflict"
    assert conflict["expectedVersion"] is None
    assert conflict["currentVersion"] == 1
    assert conflict["current"]["title"] == recipe["title"]


async def test_expected_version_for_unknown_id_is_not_found(api: Api) -> None:
    error = await api.error(UPSERT, {"input": {"id": "nope", "expectedVersion": 1, "title": "x"}})
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_fifty_concurrent_upserts_one_wins(api: Api, mongo: Any) -> None:
    recipe = await create(api)

    async def attempt(n: int) -> dict[str, Any]:
        data = await api.data(
            UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 1, "title": f"edit {n}"}}
        )
        result: dict[str, Any] = data["upsertRecipe"]
        return result

    results = await asyncio.gather(*(attempt(n) for n in range(50)))
    winners = [r for r in results if r["__typename"] == "Recipe"]
    conflicts = [r for r in results if r["__typename"] == "VersionConflict"]
    assert len(winners) == 1
    assert len(conflicts) == 49
    assert all(c["currentVersion"] == 2 for c in conflicts)
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert stored["version"] == 2
    assert stored["title"] == winners[0]["title"]


async def test_fifty_concurrent_creates_of_one_id_one_wins(api: Api) -> None:
    async def attempt(n: int) -> str:
        data = await api.data(UPSERT, {"input": {"id": "same-id", "title": f"c{n}"}})
        typename: str = data["upsertRecipe"]["__typename"]
        return typename

    results = await asyncio.gather(*(attempt(n) for n in range(50)))
    assert results.count("Recipe") == 1
    assert results.count("VersionConflict") == 49


async def test_delete_leaves_a_tombstone_and_vanishes(api: Api, mongo: Any) -> None:
    recipe = await create(api)
    data = await api.data(DELETE, {"id": recipe["id"], "v": 1})
    assert data["deleteRecipe"] == {"__typename": "RecipeDeleted", "id": recipe["id"], "version": 2}
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert stored["deleted"] is True and stored["version"] == 2
    assert (await api.data(GET, {"id": recipe["id"]}))["recipe"] is None
    listed = await api.data("{ recipes { totalCount edges { node { id } } } }")
    assert listed["recipes"]["totalCount"] == 0


async def test_delete_with_stale_version_is_a_conflict(api: Api, mongo: Any) -> None:
    recipe = await create(api)
    await api.data(UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "B"}})
    data = await api.data(DELETE, {"id": recipe["id"], "v": 1})
    assert data["deleteRecipe"]["__typename"] == "VersionConflict"
    assert data["deleteRecipe"]["currentVersion"] == 2
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert stored["deleted"] is False


async def test_tombstone_cannot_be_updated(api: Api) -> None:
    recipe = await create(api)
    await api.data(DELETE, {"id": recipe["id"], "v": 1})
    data = await api.data(
        UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 2, "title": "zombie"}}
    )
    conflict = data["upsertRecipe"]
    assert conflict["__typename"] == "VersionConflict"
    assert conflict["currentVersion"] == 2
    assert conflict["current"] is None


async def test_server_owned_fields_cannot_be_set(api: Api) -> None:
    for field, value in (
        ("ownerId", "mallory"),
        ("version", 99),
        ("createdAt", "2020-01-01"),
        ("updatedAt", "2020-01-01"),
        ("deleted", True),
    ):
        body = await api.gql(UPSERT, {"input": {"title": "x", field: value}})
        assert body["errors"], field
        assert body.get("data") is None
    listed = await api.data("{ recipes { totalCount } }")
    assert listed["recipes"]["totalCount"] == 0
