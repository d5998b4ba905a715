"""RxDB-compatible replication: the exact operations an RxDB client sends (../shared/NOTES.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support import DELETE, UPSERT, Api, KeyPair, LiveServer, create, serving
from tests.wsclient import GraphQLWS

FIELDS = """id title description ingredients { name quantity unit note } steps tags servings
prepMinutes cookMinutes imageUrl ownerId collaborators visibility version updatedAt _deleted"""

PULL = f"""query PullRecipe($checkpoint: RecipeInputCheckpoint, $limit: Int!) {{
  pullRecipe(checkpoint: $checkpoint, limit: $limit) {{
    documents {{ {FIELDS} }} checkpoint {{ id updatedAt }} }} }}"""

PUSH = f"""mutation PushRecipe($recipePushRow: [RecipeInputPushRow!]) {{
  pushRecipe(recipePushRow: $recipePushRow) {{ {FIELDS} }} }}"""

STREAM = f"""subscription onStream($headers: RecipeInputHeaders) {{
  streamRecipe(headers: $headers) {{ documents {{ {FIELDS} }} checkpoint {{ id updatedAt }} }} }}"""

PATCH = """mutation Patch($id: ID!, $base: Int!, $patch: RecipePatch!) {
  patchRecipe(id: $id, baseVersion: $base, patch: $patch) {
    __typename
    ... on Recipe { id version title steps tags }
    ... on MergeConflict { id fields current { version title steps } }
  } }"""


def doc(recipe_id: str, title: str = "Soup", **fields: Any) -> dict[str, Any]:
    """A document as an RxDB client holds it (server-owned fields included when known)."""
    base: dict[str, Any] = {
        "id": recipe_id,
        "title": title,
        "description": "",
        "ingredients": [],
        "steps": [],
        "tags": [],
        "servings": None,
        "prepMinutes": None,
        "cookMinutes": None,
        "imageUrl": None,
        "collaborators": [],
        "visibility": "PRIVATE",
        "_deleted": False,
    }
    base.update(fields)
    return base


def as_input(master: dict[str, Any]) -> dict[str, Any]:
    """A pulled document turned back into an input (what RxDB sends as assumedMasterState)."""
    return dict(master)


async def pull_all(
    api: Api, user: str = "alice", checkpoint: Any = None, limit: int = 10
) -> tuple[dict[str, dict[str, Any]], Any, int]:
    """Pull until nothing new; returns (id -> latest doc, final checkpoint, pulls made)."""
    docs: dict[str, dict[str, Any]] = {}
    pulls = 0
    while True:
        bulk = (await api.data(PULL, {"checkpoint": checkpoint, "limit": limit}, user=user))[
            "pullRecipe"
        ]
        pulls += 1
        for d in bulk["documents"]:
            docs[d["id"]] = d
        if not bulk["documents"]:
            return docs, bulk["checkpoint"], pulls
        checkpoint = bulk["checkpoint"]


async def push(api: Api, rows: list[dict[str, Any]], user: str = "alice") -> list[Any]:
    data = await api.data(PUSH, {"recipePushRow": rows}, user=user)
    result: list[Any] = data["pushRecipe"]
    return result


async def test_first_pull_has_no_checkpoint_and_pages_follow_checkpoints(api: Api) -> None:
    empty = (await api.data(PULL, {"checkpoint": None, "limit": 5}))["pullRecipe"]
    assert empty == {"documents": [], "checkpoint": None}
    for i in range(12):
        await create(api, id=f"r{i:02d}", title=f"R{i}")
    seen: list[str] = []
    checkpoint = None
    for expected in (5, 5, 2, 0):
        bulk = (await api.data(PULL, {"checkpoint": checkpoint, "limit": 5}))["pullRecipe"]
        assert len(bulk["documents"]) == expected
        seen += [d["id"] for d in bulk["documents"]]
        if bulk["documents"]:
            last = bulk["documents"][-1]
            assert bulk["checkpoint"] == {"id": last["id"], "updatedAt": last["updatedAt"]}
        else:
            assert bulk["checkpoint"] == checkpoint  # nothing new: the input checkpoint
        checkpoint = bulk["checkpoint"]
    assert seen == [f"r{i:02d}" for i in range(12)]  # sync order is write order here


async def test_pull_includes_tombstones_and_latest_versions(api: Api) -> None:
    recipe = await create(api, id="t", title="Gone soon")
    _, checkpoint, _ = await pull_all(api)
    await api.data(UPSERT, {"input": {"id": "t", "expectedVersion": 1, "title": "Edited"}})
    await api.data(DELETE, {"id": "t", "v": 2})
    docs, _, _ = await pull_all(api, checkpoint=checkpoint)
    assert docs["t"]["_deleted"] is True and docs["t"]["version"] == 3
    assert recipe["id"] == "t"


async def test_push_creates_updates_and_deletes(api: Api, mongo: Any) -> None:
    new = doc("offline-1", "Made offline", steps=["mix"], ownerId="mallory", version=99)
    assert await push(api, [{"newDocumentState": new}]) == []
    docs, checkpoint, _ = await pull_all(api)
    master = docs["offline-1"]
    assert (master["version"], master["ownerId"], master["steps"]) == (1, "alice", ["mix"])
    changed = {**master, "title": "Renamed offline"}
    assert await push(api, [{"assumedMasterState": master, "newDocumentState": changed}]) == []
    deleted = {**changed, "_deleted": True}
    master2 = (await pull_all(api, checkpoint=checkpoint))[0]["offline-1"]
    assert master2["title"] == "Renamed offline" and master2["version"] == 2
    assert await push(api, [{"assumedMasterState": master2, "newDocumentState": deleted}]) == []
    stored = await mongo.recipes.find_one({"_id": "offline-1"})
    assert stored["deleted"] is True and stored["version"] == 3


async def test_push_of_an_existing_id_without_assumed_state_is_a_conflict(api: Api) -> None:
    await create(api, id="taken", title="Server copy")
    conflicts = await push(api, [{"newDocumentState": doc("taken", "Client copy")}])
    assert [(c["id"], c["title"]) for c in conflicts] == [("taken", "Server copy")]


async def test_offline_edits_of_different_fields_both_survive(api: Api) -> None:
    await create(api, id="m", title="Stew", steps=["chop"], tags=["dinner"])
    master = (await pull_all(api))[0]["m"]
    phone_a = {**master, "title": "Beef stew"}  # A edits the title offline
    phone_b = {**master, "steps": ["chop", "simmer"]}  # B edits the steps offline
    assert await push(api, [{"assumedMasterState": master, "newDocumentState": phone_a}]) == []
    # B's assumed state is now stale (v1 vs v2): merged field by field, not rejected.
    assert await push(api, [{"assumedMasterState": master, "newDocumentState": phone_b}]) == []
    final = (await pull_all(api))[0]["m"]
    assert (final["title"], final["steps"], final["version"]) == (
        "Beef stew",
        ["chop", "simmer"],
        3,
    )


async def test_offline_edits_of_the_same_field_conflict(api: Api, mongo: Any) -> None:
    await create(api, id="c", title="Stew")
    master = (await pull_all(api))[0]["c"]
    await push(
        api, [{"assumedMasterState": master, "newDocumentState": {**master, "title": "A's title"}}]
    )
    conflicts = await push(
        api, [{"assumedMasterState": master, "newDocumentState": {**master, "title": "B's title"}}]
    )
    assert [(c["title"], c["version"]) for c in conflicts] == [("A's title", 2)]
    assert (await mongo.recipes.find_one({"_id": "c"}))["title"] == "A's title"
    # The same edit made twice converges instead of conflicting.
    same = await push(
        api, [{"assumedMasterState": master, "newDocumentState": {**master, "title": "A's title"}}]
    )
    assert same == []


async def test_stale_delete_against_an_edit_is_a_conflict(api: Api) -> None:
    await create(api, id="d", title="Keep?")
    master = (await pull_all(api))[0]["d"]
    await push(
        api, [{"assumedMasterState": master, "newDocumentState": {**master, "steps": ["new step"]}}]
    )
    conflicts = await push(
        api, [{"assumedMasterState": master, "newDocumentState": {**master, "_deleted": True}}]
    )
    assert conflicts and conflicts[0]["_deleted"] is False
    assert conflicts[0]["steps"] == ["new step"]


async def test_a_bad_row_rejects_the_whole_push(api: Api, mongo: Any) -> None:
    rows = [
        {"newDocumentState": doc("good", "Fine")},
        {"newDocumentState": doc("bad", "x" * 201)},
    ]
    body = await api.gql(PUSH, {"recipePushRow": rows})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "recipePushRow[1].newDocumentState.title"
    assert await mongo.recipes.count_documents({}) == 0


async def test_push_row_limit(api: Api) -> None:
    rows = [{"newDocumentState": doc(f"r{i}")} for i in range(101)]
    error = await api.error(PUSH, {"recipePushRow": rows})
    assert error["extensions"]["field"] == "recipePushRow"


async def test_duplicate_ids_in_one_push_are_rejected(api: Api) -> None:
    rows = [{"newDocumentState": doc("same")}, {"newDocumentState": doc("same")}]
    error = await api.error(PUSH, {"recipePushRow": rows})
    assert "appears twice" in error["message"]


async def test_patch_merges_disjoint_fields_and_reports_clashes(api: Api) -> None:
    await create(api, id="p", title="Pie", steps=["bake"])
    a = await api.data(PATCH, {"id": "p", "base": 1, "patch": {"title": "Apple pie"}})
    assert (a["patchRecipe"]["__typename"], a["patchRecipe"]["version"]) == ("Recipe", 2)
    b = await api.data(PATCH, {"id": "p", "base": 1, "patch": {"steps": ["peel", "bake"]}})
    assert b["patchRecipe"]["title"] == "Apple pie"
    assert b["patchRecipe"]["steps"] == ["peel", "bake"]
    clash = await api.data(
        PATCH, {"id": "p", "base": 1, "patch": {"title": "Cherry pie", "tags": ["fruit"]}}
    )
    result = clash["patchRecipe"]
    assert result["__typename"] == "MergeConflict"
    assert result["fields"] == ["title"]
    assert result["current"]["version"] == 3  # nothing changed, tags included
    same = await api.data(PATCH, {"id": "p", "base": 1, "patch": {"title": "Apple pie"}})
    assert same["patchRecipe"]["__typename"] == "Recipe"


async def test_patch_rules(api: Api) -> None:
    await create(api, id="q", user="alice", collaborators=["bob"])
    assert (await api.error(PATCH, {"id": "q", "base": 9, "patch": {"title": "x"}}))["extensions"][
        "field"
    ] == "baseVersion"
    assert (await api.error(PATCH, {"id": "q", "base": 1, "patch": {}}))["extensions"][
        "field"
    ] == "patch"
    assert (await api.error(PATCH, {"id": "q", "base": 1, "patch": {"title": "x"}}, user="eve"))[
        "extensions"
    ]["code"] == "NOT_FOUND"
    assert (
        await api.error(
            PATCH, {"id": "q", "base": 1, "patch": {"visibility": "PUBLIC"}}, user="bob"
        )
    )["extensions"]["code"] == "FORBIDDEN"
    assert (await api.error(PATCH, {"id": "q", "base": 1, "patch": {"servings": 0}}))["extensions"][
        "field"
    ] == "servings"


async def test_pull_and_push_respect_permissions(api: Api, mongo: Any) -> None:
    await create(api, id="mine", user="alice", collaborators=["bob"])
    await create(api, id="secret", user="alice")
    await create(api, id="open", user="carol", visibility="PUBLIC")
    bob_docs, _, _ = await pull_all(api, user="bob")
    assert set(bob_docs) == {"mine", "open"}
    # bob may not edit carol's public recipe: the push answers with the master state.
    master = bob_docs["open"]
    conflicts = await push(
        api,
        [{"assumedMasterState": master, "newDocumentState": {**master, "title": "bob was here"}}],
        user="bob",
    )
    assert conflicts[0]["title"] == master["title"]
    assert (await mongo.recipes.find_one({"_id": "open"}))["version"] == 1
    body = await api.gql(
        PUSH,
        {
            "recipePushRow": [
                {
                    "assumedMasterState": doc("secret", version=1),
                    "newDocumentState": doc("secret", "stolen", version=1),
                }
            ]
        },
        user="bob",
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_losing_access_arrives_as_a_content_free_tombstone(api: Api) -> None:
    await create(api, id="shared", user="alice", title="Family recipe", collaborators=["bob"])
    docs, checkpoint, _ = await pull_all(api, user="bob")
    assert docs["shared"]["_deleted"] is False
    await api.data(
        UPSERT,
        {
            "input": {
                "id": "shared",
                "expectedVersion": 1,
                "title": "New secret title",
                "collaborators": [],
            }
        },
    )
    after, _, _ = await pull_all(api, user="bob", checkpoint=checkpoint)
    gone = after["shared"]
    assert gone["_deleted"] is True and gone["version"] == 2
    assert gone["title"] == "" and gone["steps"] == [], "leaked content bob may not read"
    # bob's offline edit to it is answered with the tombstone, not an error.
    conflicts = await push(
        api,
        [
            {
                "assumedMasterState": docs["shared"],
                "newDocumentState": {**docs["shared"], "title": "mine"},
            }
        ],
        user="bob",
    )
    assert conflicts[0]["_deleted"] is True


async def test_stream_pushes_changes_and_access_loss(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    token = rsa_keys.token(sub="bob")
    ws = await GraphQLWS.connect(
        server.url, payload={"headers": {"authorization": f"Bearer {token}"}}
    )
    await ws.subscribe(STREAM, {"headers": {"authorization": f"Bearer {token}"}})
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(1), 10)
    await create(api, id="private", user="alice")
    await create(api, id="s", user="alice", title="Shared", collaborators=["bob"])
    bulk = (await ws.next_data())["streamRecipe"]
    assert [d["id"] for d in bulk["documents"]] == ["s"]
    assert bulk["checkpoint"] == {"id": "s", "updatedAt": bulk["documents"][0]["updatedAt"]}
    await api.data(
        UPSERT, {"input": {"id": "s", "expectedVersion": 1, "title": "Hidden", "collaborators": []}}
    )
    gone = (await ws.next_data())["streamRecipe"]["documents"][0]
    assert (gone["id"], gone["_deleted"], gone["title"]) == ("s", True, "")
    await ws.close()


async def test_stream_with_an_invalid_headers_token_is_refused(
    server: LiveServer, rsa_keys: KeyPair
) -> None:
    ws = await GraphQLWS.connect(
        server.url, payload={"authorization": f"Bearer {rsa_keys.token()}"}
    )
    await ws.subscribe(STREAM, {"headers": {"authorization": "Bearer forged"}})
    message = await ws.receive()
    assert message["type"] == "error", message  # ends the operation; clients resubscribe
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else [payload]
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    await ws.close()


@pytest.fixture
async def short_retention(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    from datetime import timedelta

    async with serving(settings, tombstone_retention=timedelta(0)) as live:
        yield live


async def test_tombstones_are_purged_and_only_checkpoints_that_missed_them_must_resync(
    short_retention: LiveServer, rsa_keys: KeyPair, mongo: Any
) -> None:
    """Retention 0: every tombstone is purgeable at once."""
    async with httpx.AsyncClient(base_url=short_retention.url) as http:
        api = Api(http, rsa_keys)
        await create(api, id="old")
        behind = (await api.data(PULL, {"checkpoint": None, "limit": 10}))["pullRecipe"]
        await api.data(DELETE, {"id": "old", "v": 1})
        await create(api, id="alive")
        current = (await api.data(PULL, {"checkpoint": None, "limit": 10}))["pullRecipe"]
        assert [d["_deleted"] for d in current["documents"]] == [True, False]
        sync = short_retention.app.state.runtime.services.sync
        assert await sync.purge_tombstones() == 1
        assert await mongo.recipes.count_documents({"_id": "old"}) == 0
        assert await mongo.recipes.count_documents({"_id": "alive"}) == 1
        # A client that already has the tombstone carries on, however old its checkpoint.
        fine = await api.data(PULL, {"checkpoint": current["checkpoint"], "limit": 10})
        assert fine["pullRecipe"]["documents"] == []
        # A new device's first pull works too.
        first = (await api.data(PULL, {"checkpoint": None, "limit": 1}))["pullRecipe"]
        assert [d["id"] for d in first["documents"]] == ["alive"]
        # A client whose checkpoint is before the purged deletion must start over.
        error = await api.error(PULL, {"checkpoint": behind["checkpoint"], "limit": 10})
        assert error["extensions"]["code"] == "CHECKPOINT_EXPIRED"
        assert "resync from scratch" in error["message"]
        # Its stale edit of the purged recipe does not bring it back.
        stale = behind["documents"][0]
        conflicts = await push(
            api, [{"assumedMasterState": stale, "newDocumentState": {**stale, "title": "zombie"}}]
        )
        assert [(c["id"], c["_deleted"]) for c in conflicts] == [("old", True)]
        assert await mongo.recipes.count_documents({"_id": "old"}) == 0


async def test_a_pushed_new_recipe_can_be_edited_before_the_client_learns_its_version(
    api: Api,
) -> None:
    """RxDB keeps its own pushed document (no version) as the assumed master."""
    new = doc("fresh", "First")
    assert await push(api, [{"newDocumentState": new}]) == []
    assert (
        await push(
            api, [{"assumedMasterState": new, "newDocumentState": {**new, "title": "Second"}}]
        )
        == []
    )
    final = (await pull_all(api))[0]["fresh"]
    assert (final["title"], final["version"]) == ("Second", 2)
    # A stale copy without a version that differs from the server is still a conflict.
    conflicts = await push(
        api, [{"assumedMasterState": new, "newDocumentState": {**new, "title": "Third"}}]
    )
    assert [c["title"] for c in conflicts] == ["Second"]


async def _write_storm(api: Api, ids: list[str], rounds: int) -> None:
    for round_ in range(rounds):
        for recipe_id in ids:
            current = (
                await api.data("query($id: ID!) { recipe(id: $id) { version } }", {"id": recipe_id})
            )["recipe"]
            if current is None:
                await create(api, id=recipe_id, title=f"{recipe_id} v1")
            else:
                await api.data(
                    UPSERT,
                    {
                        "input": {
                            "id": recipe_id,
                            "expectedVersion": current["version"],
                            "title": f"{recipe_id} r{round_}",
                        }
                    },
                )


@pytest.fixture
async def second_instance(settings: Settings) -> AsyncIterator[LiveServer]:
    live = LiveServer(create_app(settings))
    await live.start()
    yield live
    await live.stop()


@pytest.mark.parametrize("attempt", range(5))
async def test_a_looping_puller_misses_no_change_under_concurrent_writers(
    api: Api, second_instance: LiveServer, rsa_keys: KeyPair, mongo: Any, attempt: int
) -> None:
    """Writers on two server instances, each over its own connections, while a puller loops
    from its checkpoint; after a final drain its id -> version map equals the server's."""
    clients = [
        httpx.AsyncClient(base_url=url, timeout=60)
        for url in (str(api.client.base_url), second_instance.url) * 2
    ]
    writers = [
        _write_storm(Api(c, rsa_keys), [f"w{n}-{i}" for i in range(4)], rounds=4)
        for n, c in enumerate(clients)
    ]
    local: dict[str, int] = {}
    checkpoint = None
    done = asyncio.Event()

    async def puller() -> None:
        nonlocal checkpoint
        while not done.is_set():
            bulk = (await api.data(PULL, {"checkpoint": checkpoint, "limit": 3}))["pullRecipe"]
            for d in bulk["documents"]:
                assert d["version"] >= local.get(d["id"], 0), "a version went backwards"
                local[d["id"]] = d["version"]
            checkpoint = bulk["checkpoint"]

    pulling = asyncio.create_task(puller())
    await asyncio.gather(*writers)
    done.set()
    await pulling
    docs, _, _ = await pull_all(api, checkpoint=checkpoint)
    local.update({i: d["version"] for i, d in docs.items()})
    server = {d["_id"]: d["version"] async for d in mongo.recipes.find({}, {"version": 1})}
    assert len(server) == 16
    assert local == server
    for c in clients:
        await c.aclose()
