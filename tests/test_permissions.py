"""Authorization rules. An unreadable recipe behaves exactly like a missing one."""

from __future__ import annotations

from typing import Any

from tests.support import DELETE, GET, LIST, UPSERT, Api, create


async def _upsert(api: Api, user: str, **fields: Any) -> dict[str, Any]:
    return await api.gql(UPSERT, {"input": fields}, user=user)


async def test_private_recipe_is_invisible_to_strangers(api: Api) -> None:
    recipe = await create(api, user="alice")
    missing = await api.data(GET, {"id": "does-not-exist"}, user="bob")
    hidden = await api.data(GET, {"id": recipe["id"]}, user="bob")
    assert missing == hidden == {"recipe": None}
    listed = await api.data(LIST, user="bob")
    assert listed["recipes"]["totalCount"] == 0


async def test_strangers_get_not_found_for_edit_and_delete_like_a_missing_id(api: Api) -> None:
    recipe = await create(api, user="alice")
    for target in (recipe["id"], "does-not-exist"):
        edit = await _upsert(api, "bob", id=target, expectedVersion=1, title="mine now")
        assert edit["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert edit["data"] is None
        delete = await api.gql(DELETE, {"id": target, "v": 1}, user="bob")
        assert delete["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert delete["errors"][0]["message"] == f"Recipe {target} not found"
    assert (await api.data(GET, {"id": recipe["id"]}))["recipe"]["title"] == "Pancakes"


async def test_collaborator_reads_and_edits(api: Api) -> None:
    recipe = await create(api, user="alice", collaborators=["bob"])
    assert (await api.data(GET, {"id": recipe["id"]}, user="bob"))["recipe"]["id"] == recipe["id"]
    body = await _upsert(api, "bob", id=recipe["id"], expectedVersion=1, title="Better")
    assert body["data"]["upsertRecipe"]["title"] == "Better"
    assert body["data"]["upsertRecipe"]["ownerId"] == "alice"


async def test_collaborator_may_resend_but_not_change_sharing(api: Api, mongo: Any) -> None:
    recipe = await create(api, user="alice", collaborators=["bob"])
    same = await _upsert(
        api,
        "bob",
        id=recipe["id"],
        expectedVersion=1,
        title="T",
        collaborators=["bob"],
        visibility="PRIVATE",
    )
    assert same["data"]["upsertRecipe"]["version"] == 2
    for change in ({"collaborators": ["bob", "eve"]}, {"visibility": "PUBLIC"}):
        body = await _upsert(api, "bob", id=recipe["id"], expectedVersion=2, title="T", **change)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", change
    stored = await mongo.recipes.find_one({"_id": recipe["id"]})
    assert stored["version"] == 2 and stored["collaborators"] == ["bob"]
    assert stored["visibility"] == "PRIVATE"


async def test_only_owner_deletes(api: Api, mongo: Any) -> None:
    recipe = await create(api, user="alice", collaborators=["bob"])
    body = await api.gql(DELETE, {"id": recipe["id"], "v": 1}, user="bob")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await mongo.recipes.find_one({"_id": recipe["id"]}))["deleted"] is False
    ok = await api.data(DELETE, {"id": recipe["id"], "v": 1}, user="alice")
    assert ok["deleteRecipe"]["__typename"] == "RecipeDeleted"


async def test_public_recipe_is_readable_but_not_editable_by_others(api: Api) -> None:
    recipe = await create(api, user="alice", visibility="PUBLIC")
    seen = await api.data(GET, {"id": recipe["id"]}, user="bob")
    assert seen["recipe"]["visibility"] == "PUBLIC"
    listed = await api.data(LIST, user="bob")
    assert [e["node"]["id"] for e in listed["recipes"]["edges"]] == [recipe["id"]]
    body = await _upsert(api, "bob", id=recipe["id"], expectedVersion=1, title="vandal")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.gql(DELETE, {"id": recipe["id"], "v": 1}, user="bob")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_admin_may_do_everything(api: Api) -> None:
    recipe = await create(api, user="alice")
    admin: dict[str, Any] = {"user": "root", "roles": ["admin"]}
    assert (await api.data(GET, {"id": recipe["id"]}, **admin))["recipe"]["id"] == recipe["id"]
    listed = await api.data(LIST, **admin)
    assert listed["recipes"]["totalCount"] == 1
    edited = await api.data(
        UPSERT,
        {
            "input": {
                "id": recipe["id"],
                "expectedVersion": 1,
                "title": "X",
                "collaborators": ["zed"],
                "visibility": "PUBLIC",
            }
        },
        **admin,
    )
    assert edited["upsertRecipe"]["collaborators"] == ["zed"]
    assert edited["upsertRecipe"]["ownerId"] == "alice"
    deleted = await api.data(DELETE, {"id": recipe["id"], "v": 2}, **admin)
    assert deleted["deleteRecipe"]["version"] == 3


async def test_removed_collaborator_loses_access(api: Api) -> None:
    recipe = await create(api, user="alice", collaborators=["bob"])
    await api.data(
        UPSERT,
        {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "T", "collaborators": []}},
        user="alice",
    )
    assert (await api.data(GET, {"id": recipe["id"]}, user="bob"))["recipe"] is None


async def test_taking_an_unreadable_id_does_not_reveal_its_content(api: Api) -> None:
    await create(api, user="alice", id="secret-id", title="Secret sauce")
    body = await _upsert(api, "bob", id="secret-id", title="mine")
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Secret" not in str(body)
