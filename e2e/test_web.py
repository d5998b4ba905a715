"""The web app (examples/web) in a real Chromium against a real Larder server.

Every wait is an auto-waiting Playwright assertion or an awaited event: nothing sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from e2e.conftest import App, TcpRelay, static_site
from tests.support import GET, LIST, UPSERT, Api, KeyPair, LiveServer, create, make_key_pair

LIVE = 10_000  # ms: "within seconds"


async def stored(api: Api, recipe_id: str, user: str = "alice") -> Any:
    return (await api.data(GET, {"id": recipe_id}, user=user))["recipe"]


async def test_two_users_see_each_others_changes_live(
    browser: Browser, web: LiveServer, relay: TcpRelay, api: Api
) -> None:
    alice = await App.open(browser, web.url)
    await alice.screenshot("sign-in")
    await alice.sign_in(relay.url, api.token("alice"))
    bob = await App.open(browser, web.url)
    await bob.sign_in(relay.url, api.token("bob"))

    # Alice creates a public recipe in the app; it reaches Bob's list over the WebSocket.
    await alice.by("new-recipe").click()
    await alice.edit(
        title="Shared shakshuka",
        description="Eggs in spicy tomato sauce",
        tags="breakfast, eggs",
        ingredients="4 Eggs\n400 g Tomatoes",
        visibility="PUBLIC",
    )
    await expect(alice.by("recipe-title")).to_have_text("Shared shakshuka")
    await expect(bob.item("Shared shakshuka")).to_be_visible(timeout=LIVE)

    # Bob follows the recipe; Alice's edit shows up in his open view without a reload.
    await bob.open_recipe("Shared shakshuka")
    await alice.by("edit").click()
    await alice.edit(title="Shared shakshuka with feta")
    await expect(bob.by("recipe-title")).to_have_text("Shared shakshuka with feta", timeout=LIVE)
    # It came over Bob's WebSockets: RxDB's streamRecipe and Apollo's recipeChanged.
    await expect(bob.by("activity")).to_contain_text("updated: Shared shakshuka with feta")
    for operation in ("streamRecipe", "recipeChanged"):
        assert any(
            operation in frame and "Shared shakshuka with feta" in frame for frame in bob.frames
        ), operation

    # And the other way round: a change written by another program reaches both browsers.
    recipe_id = await alice.by("recipe-view").get_attribute("data-recipe-id")
    current = await stored(api, str(recipe_id))
    await api.data(
        UPSERT,
        {"input": {"id": recipe_id, "expectedVersion": current["version"], "title": "Shakshuka"}},
    )
    await expect(alice.by("recipe-title")).to_have_text("Shakshuka", timeout=LIVE)
    await expect(bob.by("recipe-title")).to_have_text("Shakshuka", timeout=LIVE)
    await alice.by("home").click()
    await alice.screenshot("list")
    # The list's search matches word prefixes in titles, tags and ingredients, locally.
    await alice.by("search").fill("tomat")
    await expect(alice.item("Shakshuka")).to_be_visible()
    await alice.by("search").fill("pizza")
    await expect(alice.by("empty")).to_have_text("No recipes match.")
    await alice.close()
    await bob.close()


async def test_stale_edit_shows_conflict_and_stores_the_chosen_merge(
    browser: Browser, web: LiveServer, relay: TcpRelay, api: Api
) -> None:
    recipe = await create(
        api,
        title="Lentil soup",
        description="Red lentils",
        servings=4,
        ingredients=[{"name": "Red lentils", "quantity": 250, "unit": "g"}, {"name": "Cumin"}],
        steps=["Simmer everything for 20 minutes.", "Blend half of it."],
    )
    alice = await App.open(browser, web.url)
    await alice.sign_in(relay.url, api.token("alice"))
    await alice.open_recipe("Lentil soup")
    await alice.by("edit").click()
    await alice.by("field-title").fill("Lentil soup with lemon")
    await alice.by("field-description").fill("Red lentils, cumin, lemon")
    await alice.by("field-servings").fill("6")
    await alice.screenshot("editor")

    # Meanwhile the same recipe is changed elsewhere (her phone): title and description.
    await api.data(
        UPSERT,
        {
            "input": {
                "id": recipe["id"],
                "expectedVersion": 1,
                "title": "Spicy lentil soup",
                "description": "Red lentils and chili",
            }
        },
    )
    await alice.by("save").click()
    conflict = alice.by("conflict")
    await expect(conflict).to_be_visible()
    await expect(alice.by("conflict-title-mine")).to_contain_text("Lentil soup with lemon")
    await expect(alice.by("conflict-title-theirs")).to_contain_text("Spicy lentil soup")
    await expect(alice.by("conflict-description-theirs")).to_contain_text("Red lentils and chili")
    await alice.screenshot("conflict")

    # Field by field: her title, the stored description, her servings.
    await alice.by("pick-description-theirs").check()
    await alice.by("save-merge").click()
    await expect(alice.by("recipe-title")).to_have_text("Lentil soup with lemon", timeout=LIVE)
    await expect(alice.by("recipe-description")).to_have_text("Red lentils and chili")
    saved = await stored(api, recipe["id"])
    assert (saved["title"], saved["description"], saved["servings"], saved["version"]) == (
        "Lentil soup with lemon",
        "Red lentils and chili",
        6,
        3,
    )
    await alice.close()


async def go_offline(app: App, relay: TcpRelay) -> None:
    await app.context.set_offline(True)
    await relay.stop()  # closes the open WebSockets too
    await expect(app.by("sync-status")).to_have_attribute("data-state", "offline")


async def go_online(app: App, relay: TcpRelay) -> None:
    await relay.start()
    await app.context.set_offline(False)


async def titles_on_server(api: Api, search: str, user: str = "alice") -> list[str]:
    data = await api.data(LIST, {"filter": {"search": search}, "first": 50}, user=user)
    return sorted(edge["node"]["title"] for edge in data["recipes"]["edges"])


async def test_offline_edits_sync_on_reconnect(
    browser: Browser, web: LiveServer, relay: TcpRelay, api: Api
) -> None:
    tart = await create(api, title="Tomato tart", visibility="PUBLIC")
    alice = await App.open(browser, web.url)
    await alice.sign_in(relay.url, api.token("alice"))
    bob = await App.open(browser, web.url)
    await bob.sign_in(relay.url, api.token("bob"))
    await expect(bob.item("Tomato tart")).to_be_visible()

    await go_offline(alice, relay)
    await alice.open_recipe("Tomato tart")
    await alice.by("edit").click()
    await expect(alice.by("save")).to_have_text("Save on this device")
    await alice.edit(title="Tomato tart with basil")
    await expect(alice.by("recipe-title")).to_have_text("Tomato tart with basil")
    await alice.by("home").click()
    await alice.by("new-recipe").click()
    await alice.edit(title="Offline focaccia", visibility="PUBLIC", ingredients="500 g Flour")
    await expect(alice.by("recipe-title")).to_have_text("Offline focaccia")
    await alice.by("home").click()
    status = alice.by("sync-status")
    await expect(status).to_have_text("offline · 2 changes waiting")
    await alice.screenshot("offline")

    # Nothing reached the server (it is asked directly, not through the cut relay).
    assert (await stored(api, tart["id"]))["title"] == "Tomato tart"
    assert await titles_on_server(api, "focaccia") == []

    await go_online(alice, relay)
    await expect(status).to_have_text("synced", timeout=LIVE)
    assert (await stored(api, tart["id"]))["title"] == "Tomato tart with basil"
    assert await titles_on_server(api, "focaccia") == ["Offline focaccia"]
    await expect(bob.item("Tomato tart with basil")).to_be_visible(timeout=LIVE)
    await expect(bob.item("Offline focaccia")).to_be_visible(timeout=LIVE)
    await alice.close()
    await bob.close()


async def test_reload_while_offline_keeps_local_data(
    browser: Browser, web: LiveServer, relay: TcpRelay, api: Api
) -> None:
    await create(api, title="Miso aubergine")
    alice = await App.open(browser, web.url)
    await alice.sign_in(relay.url, api.token("alice"))
    await expect(alice.item("Miso aubergine")).to_be_visible()
    await go_offline(alice, relay)
    await alice.by("new-recipe").click()
    await alice.edit(title="Offline dal")
    await expect(alice.by("recipe-title")).to_have_text("Offline dal")

    # The page itself is served by another server: let it load, the API stays cut off.
    await alice.context.set_offline(False)
    await alice.page.reload()
    await expect(alice.by("recipe-title")).to_have_text("Offline dal")  # from IndexedDB
    await expect(alice.by("sync-status")).to_have_attribute("data-state", "offline")
    await alice.by("home").click()
    await expect(alice.item("Miso aubergine")).to_be_visible()
    await expect(alice.item("Offline dal")).to_contain_text("not synced yet")
    await expect(alice.by("me")).to_have_text("alice")  # the session survived the reload

    await relay.start()
    await expect(alice.by("sync-status")).to_have_text("synced", timeout=LIVE)
    assert await titles_on_server(api, "dal") == ["Offline dal"]
    await alice.close()


async def test_expired_token_is_refreshed_without_reload(
    browser: Browser, web: LiveServer, relay: TcpRelay, api: Api, keys: KeyPair, tmp_path: Path
) -> None:
    soup = await create(api, title="Pea soup")
    alice = await App.open(browser, web.url)
    await alice.sign_in(relay.url, keys.token(sub="alice", ttl_seconds=10))
    await expect(alice.item("Pea soup")).to_be_visible()
    await alice.page.evaluate("window.sameDocument = true")

    # At `exp` the server closes the sockets with 4440; the app asks for a new token.
    prompt = alice.by("session-expired")
    await expect(prompt).to_be_visible(timeout=20_000)
    await expect(alice.by("sync-status")).to_have_attribute("data-state", "expired")

    # It keeps working locally meanwhile.
    await alice.open_recipe("Pea soup")
    await alice.by("edit").click()
    await alice.edit(title="Pea soup with mint")
    await expect(alice.by("recipe-title")).to_have_text("Pea soup with mint")
    await expect(alice.by("sync-status")).to_have_text("session expired · 1 change waiting")
    await alice.screenshot("session-expired")
    assert (await stored(api, soup["id"]))["title"] == "Pea soup"

    # A token the server refuses (signed by another key): the app asks again, through the
    # same refresh path (WebSocket close 4403 / HTTP 401), and nothing is lost.
    stranger_keys = make_key_pair(tmp_path, "ec")
    await prompt.get_by_test_id("token").fill(stranger_keys.token(sub="alice"))
    await prompt.get_by_test_id("sign-in-submit").click()
    await expect(alice.by("token-refused")).to_be_visible(timeout=LIVE)
    assert (await stored(api, soup["id"]))["title"] == "Pea soup"

    await prompt.get_by_test_id("token").fill(api.token("alice"))
    await prompt.get_by_test_id("sign-in-submit").click()
    await expect(prompt).to_be_hidden()
    await expect(alice.by("sync-status")).to_have_text("synced", timeout=LIVE)
    assert (await stored(api, soup["id"]))["title"] == "Pea soup with mint"
    assert await alice.page.evaluate("window.sameDocument") is True  # no reload happened
    # Live updates flow again on the reconnected socket.
    current = await stored(api, soup["id"])
    await api.data(
        UPSERT,
        {"input": {"id": soup["id"], "expectedVersion": current["version"], "title": "Pea soup!"}},
    )
    await expect(alice.by("recipe-title")).to_have_text("Pea soup!", timeout=LIVE)
    await alice.close()


OPEN_SOCKET = """url => new Promise(resolve => {
  const socket = new WebSocket(url, "graphql-transport-ws");
  socket.onopen = () => { socket.close(); resolve("open"); };
  socket.onclose = event => resolve(`closed ${event.code}`);
})"""

FETCH = """url => fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
  body: '{"query": "{ __typename }"}'}).then(r => `HTTP ${r.status}`, e => `blocked: ${e.name}`)"""


async def test_page_on_unlisted_origin_is_refused_with_a_clear_error(
    browser: Browser, web: LiveServer, relay: TcpRelay, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    other = static_site()  # the same app on another origin, not in CORS_ORIGINS
    await other.start()
    try:
        stranger = await App.open(browser, other.url)
        await stranger.sign_in(relay.url, api.token("alice"), expect_ok=False)
        error = stranger.by("sign-in-error")
        await expect(error).to_contain_text(f"does not allow this page's origin ({other.url})")
        await expect(error).to_contain_text("CORS_ORIGINS")
        await expect(stranger.by("sync-status")).to_have_count(0)
        ws_url = relay.url.replace("http", "ws") + "/graphql"
        # The browser's own WebSocket is refused at the handshake (403: no open, close 1006),
        # and its HTTP request is blocked by CORS...
        assert await stranger.page.evaluate(OPEN_SOCKET, ws_url) == "closed 1006"
        refused = [r.getMessage() for r in caplog.records if r.name == "strawberry.ws"]
        assert any(f"from origin '{other.url}'" in message for message in refused), refused
        assert await stranger.page.evaluate(FETCH, f"{relay.url}/graphql") == "blocked: TypeError"
        # ...while the listed origin gets both.
        listed = await App.open(browser, web.url)
        assert await listed.page.evaluate(OPEN_SOCKET, ws_url) == "open"
        assert await listed.page.evaluate(FETCH, f"{relay.url}/graphql") == "HTTP 401"
        await stranger.close()
        await listed.close()
    finally:
        await other.stop()
