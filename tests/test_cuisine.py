"""`cuisine`, added through the field declaration alone (app/models/fields.py): written,
validated, merged, synced, searched and delivered like the fields that came before it."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support import Api, KeyPair, LiveServer, create
from tests.test_foreign_writes import adoptions
from tests.wsclient import GraphQLWS

UPSERT = """mutation Upsert($input: RecipeInput!) {
  upsertRecipe(input: $input) { ... on Recipe { id version title cuisine } } }"""

PATCH = """mutation Patch($id: ID!, $base: Int!, $patch: RecipePatch!) {
  patchRecipe(id: $id, baseVersion: $base, patch: $patch) {
    __typename
    ... on Recipe { version title cuisine }
    ... on MergeConflict { fields current { version cuisine } } } }"""

SYNC_FIELDS = "id title cuisine ownerId collaborators visibility version updatedAt _deleted"

PULL = f"""query Pull($checkpoint: RecipeInputCheckpoint, $limit: Int!) {{
  pullRecipe(checkpoint: $checkpoint, limit: $limit) {{
    documents {{ {SYNC_FIELDS} }} checkpoint {{ id updatedAt }} }} }}"""

PUSH = f"""mutation Push($rows: [RecipeInputPushRow!]) {{
  pushRecipe(recipePushRow: $rows) {{ {SYNC_FIELDS} }} }}"""

CHANGES = """subscription { recipeChanged { kind version recipe { id cuisine } } }"""

SEARCH = """query Search($text: String!) {
  recipes(filter: {search: $text}) { edges { node { id } } } }"""


async def upsert(api: Api, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await api.data(UPSERT, {"input": fields}))["upsertRecipe"]
    return result


async def search(api: Api, text: str) -> list[str]:
    data = await api.data(SEARCH, {"text": text})
    return [e["node"]["id"] for e in data["recipes"]["edges"]]


async def test_cuisine_is_trimmed_stored_updated_and_cleared(api: Api, mongo: Any) -> None:
    plain = await create(api, id="plain")
    assert (await api.data('{ recipe(id: "plain") { cuisine } }'))["recipe"] == {"cuisine": None}
    assert plain["version"] == 1
    made = await upsert(api, id="c", title="Pad thai", cuisine="  Thai ")
    assert (made["version"], made["cuisine"]) == (1, "Thai")
    stored = await mongo.recipes.find_one({"_id": "c"})
    assert (stored["cuisine"], stored["field_versions"]["cuisine"]) == ("Thai", 1)

    changed = await upsert(api, id="c", expectedVersion=1, title="Pad thai", cuisine="Thai street")
    assert (changed["version"], changed["cuisine"]) == (2, "Thai street")
    kept = await upsert(api, id="c", expectedVersion=2, title="Pad see ew")
    assert (kept["version"], kept["cuisine"]) == (3, "Thai street")  # left out: kept
    blank = await upsert(api, id="c", expectedVersion=3, title="Pad see ew", cuisine="   ")
    assert (blank["version"], blank["cuisine"]) == (4, None)  # empty after trimming: none
    stored = await mongo.recipes.find_one({"_id": "c"})
    assert stored["cuisine"] is None and stored["field_versions"]["cuisine"] == 4


async def test_cuisine_limit_names_the_field_everywhere(api: Api, mongo: Any) -> None:
    accepted = await upsert(api, id="max", title="Long", cuisine=" " + "x" * 60 + " ")
    assert accepted["cuisine"] == "x" * 60
    error = await api.error(UPSERT, {"input": {"title": "Too long", "cuisine": "x" * 61}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "cuisine"
    assert error["message"] == "cuisine: must be at most 60 characters"

    error = await api.error(PATCH, {"id": "max", "base": 1, "patch": {"cuisine": "y" * 61}})
    assert error["extensions"]["field"] == "cuisine"

    row = {"newDocumentState": {"id": "pushed", "title": "Soup", "cuisine": "z" * 61}}
    error = await api.error(PUSH, {"rows": [row]})
    assert error["extensions"]["field"] == "recipePushRow[0].newDocumentState.cuisine"
    assert await mongo.recipes.count_documents({}) == 1
    assert (await mongo.recipes.find_one({"_id": "max"}))["version"] == 1


async def test_patches_merge_cuisine_field_by_field(api: Api) -> None:
    await create(api, id="p", title="Curry")
    title = await api.data(PATCH, {"id": "p", "base": 1, "patch": {"title": "Green curry"}})
    assert title["patchRecipe"]["version"] == 2
    cuisine = await api.data(PATCH, {"id": "p", "base": 1, "patch": {"cuisine": "Thai"}})
    merged = cuisine["patchRecipe"]
    assert (merged["__typename"], merged["version"]) == ("Recipe", 3)
    assert (merged["title"], merged["cuisine"]) == ("Green curry", "Thai")

    clash = await api.data(PATCH, {"id": "p", "base": 2, "patch": {"cuisine": "Indian"}})
    conflict = clash["patchRecipe"]
    assert conflict["__typename"] == "MergeConflict"
    assert conflict["fields"] == ["cuisine"]
    assert conflict["current"] == {"version": 3, "cuisine": "Thai"}
    same = await api.data(PATCH, {"id": "p", "base": 2, "patch": {"cuisine": "Thai"}})
    assert same["patchRecipe"]["__typename"] == "Recipe"  # identical edits converge


async def push(api: Api, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = await api.data(PUSH, {"rows": rows})
    conflicts: list[dict[str, Any]] = data["pushRecipe"]
    return conflicts


async def pull(api: Api, checkpoint: Any = None) -> list[dict[str, Any]]:
    data = await api.data(PULL, {"checkpoint": checkpoint, "limit": 10})
    documents: list[dict[str, Any]] = data["pullRecipe"]["documents"]
    return documents


async def test_push_and_pull_carry_cuisine_and_merge_stale_rows(api: Api) -> None:
    new = {"id": "o", "title": "Ramen", "cuisine": " Japanese", "_deleted": False}
    assert await push(api, [{"newDocumentState": new}]) == []
    (master,) = await pull(api)
    assert (master["id"], master["version"], master["cuisine"]) == ("o", 1, "Japanese")

    # Two offline edits of version 1: one renames, the other changes the cuisine.
    renamed = {**master, "title": "Shoyu ramen"}
    recuisined = {**master, "cuisine": "Japanese (Tokyo)"}
    assert await push(api, [{"assumedMasterState": master, "newDocumentState": renamed}]) == []
    stale = [{"assumedMasterState": master, "newDocumentState": recuisined}]
    assert await push(api, stale) == []  # rebased on version 2: both edits survive
    (latest,) = await pull(api)
    assert (latest["version"], latest["title"], latest["cuisine"]) == (
        3,
        "Shoyu ramen",
        "Japanese (Tokyo)",
    )

    # A stale row changing the cuisine someone else changed meanwhile is a conflict.
    clashing = {**master, "cuisine": "Chinese"}
    conflicts = await push(api, [{"assumedMasterState": master, "newDocumentState": clashing}])
    assert [(c["version"], c["cuisine"]) for c in conflicts] == [(3, "Japanese (Tokyo)")]


async def test_search_finds_cuisine_words_and_follows_edits(api: Api) -> None:
    await create(api, id="i", title="Risotto", cuisine="Northern Italian")
    await create(api, id="m", title="Tagine", cuisine="Moroccan")
    assert await search(api, "ital") == ["i"]
    assert await search(api, "northern risotto") == ["i"]
    assert await search(api, "morocc") == ["m"]
    await upsert(api, id="m", expectedVersion=1, title="Tagine", cuisine=None)
    assert await search(api, "morocc") == []


async def test_a_cuisine_change_is_delivered_on_recipe_changed(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    await create(api, id="live", title="Pho")
    ws = await GraphQLWS.connect(
        server.url, payload={"authorization": f"Bearer {rsa_keys.token(sub='alice')}"}
    )
    before = runtime.hub.subscriber_count
    await ws.subscribe(CHANGES)
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(before + 1), 10)
    await api.data(PATCH, {"id": "live", "base": 1, "patch": {"cuisine": "Vietnamese"}})
    event = (await ws.next_data())["recipeChanged"]
    assert event == {
        "kind": "UPDATED",
        "version": 2,
        "recipe": {"id": "live", "cuisine": "Vietnamese"},
    }
    await ws.close()


async def test_a_foreign_cuisine_write_is_adopted_and_searchable(
    api: Api, runtime: Any, mongo: Any
) -> None:
    await create(api, id="n", title="Bibimbap")
    async with adoptions(runtime, "n") as adopted:
        await mongo.recipes.update_one({"_id": "n"}, {"$set": {"cuisine": "Korean", "version": 2}})
        event = await asyncio.wait_for(adopted.get(), 20)
    assert event.after is not None and event.after.cuisine == "Korean"
    stored = await mongo.recipes.find_one({"_id": "n"})
    assert stored["field_versions"]["cuisine"] == 2 and stored["field_versions"]["title"] == 1
    assert await search(api, "korea") == ["n"]
