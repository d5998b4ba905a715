"""recipes(): order, keyset pagination under concurrent writes, search, filters."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models.recipe import Recipe
from app.services.cursor import decode_cursor, encode_cursor
from app.services.errors import BadInput
from app.services.state import next_state
from tests.support import LIST, UPSERT, Api, create


async def _all_pages(api: Api, first: int, user: str = "alice", **filt: Any) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page = (
            await api.data(
                LIST, {"first": first, "after": after, "filter": filt or None}, user=user
            )
        )["recipes"]
        ids += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


async def test_newest_first_ties_by_id(api: Api, mongo: Any) -> None:
    for i in range(5):
        await create(api, id=f"r{i}", title=f"R{i}")
    # Give two recipes the same stamp (the order key; only a write made around Larder can do
    # this) to check the tie-break on id.
    same = (await mongo.recipes.find_one({"_id": "r4"}))["stamp"]
    await mongo.recipes.update_one({"_id": "r0"}, {"$set": {"stamp": same}})
    page = (await api.data(LIST, {"first": 10}))["recipes"]
    ids = [e["node"]["id"] for e in page["edges"]]
    assert ids == ["r4", "r0", "r3", "r2", "r1"]
    assert page["totalCount"] == 5


async def test_pages_cover_everything_once(api: Api) -> None:
    for i in range(23):
        await create(api, id=f"p{i:02d}", title=f"P{i}")
    ids = await _all_pages(api, first=5)
    assert sorted(ids) == sorted(f"p{i:02d}" for i in range(23))
    assert len(ids) == len(set(ids))


async def test_pagination_stays_correct_under_concurrent_inserts(api: Api) -> None:
    for i in range(30):
        await create(api, id=f"old{i:02d}", title="old")
    seen: list[str] = []
    after = None
    writer_done = asyncio.Event()

    async def writer() -> None:
        for i in range(30):
            await create(api, id=f"new{i:02d}", title="new")
        writer_done.set()

    task = asyncio.create_task(writer())
    while True:
        page = (await api.data(LIST, {"first": 4, "after": after}))["recipes"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    await task
    assert writer_done.is_set()
    assert len(seen) == len(set(seen)), "a recipe appeared twice"
    assert {f"old{i:02d}" for i in range(30)} <= set(seen), "an existing recipe was skipped"


async def test_first_is_bounded(api: Api) -> None:
    error = await api.error(LIST, {"first": 101})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "first"
    assert (await api.data(LIST, {"first": 100}))["recipes"]["edges"] == []
    assert (await api.error(LIST, {"first": -1}))["extensions"]["field"] == "first"


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WyJ4IiwxXQ", ""])
async def test_bad_cursor_is_a_clear_error(api: Api, cursor: str) -> None:
    await create(api)
    body = await api.gql(LIST, {"after": cursor})
    if cursor == "":
        assert "errors" not in body  # empty `after` means "from the start"
        return
    assert body["errors"][0]["extensions"] == {
        "code": "BAD_USER_INPUT",
        "field": "after",
        "fields": [{"field": "after", "message": "is not a cursor returned by this server"}],
    }


async def test_search_matches_words_and_prefixes_case_insensitively(api: Api) -> None:
    await create(api, id="a", title="Spicy Tomato Soup", tags=["Dinner"])
    await create(api, id="b", title="Pancakes", ingredients=[{"name": "Buttermilk"}])
    await create(api, id="c", title="Tomato salad", tags=["summer"])

    async def search(text: str) -> set[str]:
        return set(await _all_pages(api, first=10, search=text))

    assert await search("tomato") == {"a", "c"}
    assert await search("TOM") == {"a", "c"}
    assert await search("tomato soup") == {"a"}
    assert await search("butter") == {"b"}
    assert await search("dinner") == {"a"}
    assert await search("summ") == {"c"}
    assert await search("pizza") == set()
    assert await search("") == {"a", "b", "c"}


async def test_search_follows_edits(api: Api) -> None:
    recipe = await create(api, id="s", title="Old name")
    await api.data(UPSERT, {"input": {"id": "s", "expectedVersion": 1, "title": "Fresh name"}})
    assert await _all_pages(api, first=10, search="old") == []
    assert await _all_pages(api, first=10, search="fresh") == [recipe["id"]]


async def test_filters_tags_owner_updated_since(api: Api) -> None:
    first = await create(
        api, id="t1", user="alice", title="A", tags=["vegan", "quick"], visibility="PUBLIC"
    )
    await create(api, id="t2", user="bob", title="B", tags=["vegan"], visibility="PUBLIC")
    await create(api, id="t3", user="bob", title="C", tags=["quick"], visibility="PUBLIC")
    assert set(await _all_pages(api, 10, tags=["vegan"])) == {"t1", "t2"}
    assert await _all_pages(api, 10, tags=["vegan", "quick"]) == ["t1"]
    assert set(await _all_pages(api, 10, ownerId="bob")) == {"t2", "t3"}
    assert set(await _all_pages(api, 10, updatedSince=first["updatedAt"])) <= {"t2", "t3"}
    counted = await api.data(LIST, {"filter": {"ownerId": "bob"}})
    assert counted["recipes"]["totalCount"] == 2


async def test_query_paths_are_indexed(api: Api, mongo: Any) -> None:
    await create(api)
    names = {i["name"] for i in await (await mongo.recipes.list_indexes()).to_list()}
    assert names == {
        "_id_",
        "audience_stamp",
        "stamp",
        "tombstones_stamp",
        "search_words",
        "tags",
        "owner_id",
    }


async def test_search_is_a_word_prefix_range_on_every_term(api: Api) -> None:
    await create(api, id="u1", title="Crème brûlée", tags=["Été", "français"])
    await create(api, id="u2", title="Ørret med dill")  # trout
    await create(api, id="u3", title="𠀋𠀌 noodles")  # a word beyond U+FFFF
    await create(api, id="u4", title="apple zebra")  # no word between "tom" and "tom…"
    await create(api, id="u5", title="Tomatensuppe", ingredients=[{"name": "Basilikum"}])

    async def search(text: str) -> set[str]:
        return set(await _all_pages(api, first=10, search=text))

    assert await search("CRÈ") == {"u1"}
    assert await search("brû") == {"u1"}
    assert await search("bru") == set()  # accents are letters of their own
    assert await search("été") == {"u1"}
    assert await search("fran crè") == {"u1"}
    assert await search("ør") == {"u2"}
    assert await search("𠀋") == {"u3"}
    assert await search("𠀋𠀌 nood") == {"u3"}
    # Both bounds hold for one word: "zebra" >= "tom" and "apple" < "tom…" is no match.
    assert await search("tom") == {"u5"}
    assert await search("tomatensuppe basil") == {"u5"}
    assert await search("tomatensuppes") == set()
    assert await search("basil dill") == set()


async def test_search_words_follow_only_searchable_edits(api: Api, mongo: Any) -> None:
    await create(api, id="w", title="Plain bread", tags=["Baking"])
    stored = await mongo.recipes.find_one({"_id": "w"})
    assert stored["search_words"] == ["baking", "bread", "plain"]
    assert "search_terms" not in stored
    # A write that changes no searchable field (nor access) $sets no derived field.
    state = next_state(Recipe.model_validate(stored), {"description": "new", "steps": ["Bake"]})
    assert not {"search_words", "readers", "revoked", "audience"} & set(state.set)
    assert set(next_state(Recipe.model_validate(stored), {"tags": ["Rye"]}).set) >= {"search_words"}
    update = {"id": "w", "expectedVersion": 1, "title": "Plain bread", "description": "new"}
    await api.data(UPSERT, {"input": update})
    assert (await mongo.recipes.find_one({"_id": "w"}))["search_words"] == stored["search_words"]
    rye = {"id": "w", "expectedVersion": 2, "title": "Plain bread", "tags": ["Rye"]}
    await api.data(UPSERT, {"input": rye})
    changed = await mongo.recipes.find_one({"_id": "w"})
    assert changed["search_words"] == ["bread", "plain", "rye"]
    assert set(await _all_pages(api, first=10, search="rye")) == {"w"}
    assert await _all_pages(api, first=10, search="bak") == []


async def test_updated_since_is_exclusive_at_millisecond_precision(api: Api) -> None:
    first = await create(api, id="m1", title="A")
    second = await create(api, id="m2", title="B")
    assert set(await _all_pages(api, 10, updatedSince=first["updatedAt"])) == (
        set() if second["updatedAt"] == first["updatedAt"] else {"m2"}
    )
    assert await _all_pages(api, 10, updatedSince=second["updatedAt"]) == []


async def test_updated_since_without_an_offset_is_utc(api: Api) -> None:
    first = await create(api, id="z1", title="A")
    at = datetime.fromisoformat(first["updatedAt"]).astimezone(UTC).replace(tzinfo=None)
    assert await _all_pages(api, 10, updatedSince=at.isoformat()) == []
    before = at - timedelta(milliseconds=1)
    assert await _all_pages(api, 10, updatedSince=before.isoformat()) == ["z1"]


def test_cursors_carry_the_stamp_and_old_cursors_still_decode() -> None:
    assert decode_cursor(encode_cursor(1764600000123.457, "r1")) == (1764600000123.457, "r1")
    old = base64.urlsafe_b64encode(b'[1764600000123,"r1"]').decode().rstrip("=")
    assert decode_cursor(old) == (1764600000123.0, "r1")
    for bad in (b'[true,"r1"]', b'[NaN,"r1"]', b'[1e999,"r1"]', b"[1" + b"0" * 400 + b',"r1"]'):
        with pytest.raises(BadInput):
            decode_cursor(base64.urlsafe_b64encode(bad).decode())
