"""recipeChanged over real WebSockets, both subprotocols, against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support import DELETE, UPSERT, Api, KeyPair, LiveServer, create, serving
from tests.wsclient import CHANGES, LEGACY, TRANSPORT, GraphQLWS, StuckClient


async def subscribe(
    server: LiveServer,
    runtime: Any,
    keys: KeyPair,
    user: str = "alice",
    *,
    protocol: str = TRANSPORT,
    variables: dict[str, Any] | None = None,
    roles: tuple[str, ...] = (),
) -> GraphQLWS:
    before = runtime.hub.subscriber_count
    ws = await GraphQLWS.connect(
        server.url,
        protocol=protocol,
        payload={"authorization": f"Bearer {keys.token(sub=user, roles=roles)}"},
    )
    await ws.subscribe(CHANGES, variables)
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(before + 1), 10)
    return ws


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_create_update_delete_are_pushed_in_order(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair, protocol: str
) -> None:
    ws = await subscribe(server, runtime, rsa_keys, protocol=protocol)
    recipe = await create(api, title="Live soup")
    await api.data(UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 1, "title": "Hot"}})
    await api.data(DELETE, {"id": recipe["id"], "v": 2})
    events = [(await ws.next_data())["recipeChanged"] for _ in range(3)]
    assert [(e["kind"], e["version"], e["recipe"]["title"]) for e in events] == [
        ("CREATED", 1, "Live soup"),
        ("UPDATED", 2, "Hot"),
        ("DELETED", 3, "Hot"),
    ]
    assert events[2]["recipe"]["deleted"] is True
    await ws.close()


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_a_stopped_subscription_ends_and_its_id_can_be_reused(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair, protocol: str
) -> None:
    ws = await subscribe(server, runtime, rsa_keys, protocol=protocol)
    await create(api, title="Before")
    assert (await ws.next_data())["recipeChanged"]["recipe"]["title"] == "Before"
    await ws.send({"id": "1", "type": "complete" if protocol == TRANSPORT else "stop"})
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(0), 10)
    if protocol == LEGACY:  # the legacy protocol completes a stopped operation
        assert await ws.receive() == {"type": "complete", "id": "1"}
    await ws.send(
        {
            "id": "1",
            "type": "subscribe" if protocol == TRANSPORT else "start",
            "payload": {"query": CHANGES},
        }
    )
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(1), 10)
    await create(api, title="After")
    message = await ws.receive()
    assert message["id"] == "1", message
    assert message["payload"]["data"]["recipeChanged"]["recipe"]["title"] == "After"
    await ws.close()
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(0), 10)


TOKEN_FORMS: dict[str, Callable[[str], dict[str, Any]]] = {
    "rxdb-headers": lambda t: {"payload": {"headers": {"Authorization": f"Bearer {t}"}}},
    "capitalised": lambda t: {"payload": {"Authorization": f"Bearer {t}"}},
    "upgrade-header": lambda t: {"headers": {"Authorization": f"Bearer {t}"}},
}


@pytest.mark.parametrize("form", TOKEN_FORMS)
async def test_token_forms_at_connection_init(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair, form: str
) -> None:
    ws = await GraphQLWS.connect(server.url, **TOKEN_FORMS[form](rsa_keys.token(sub="alice")))
    await ws.subscribe(CHANGES)
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(1), 10)
    await create(api, title="Seen")
    assert (await ws.next_data())["recipeChanged"]["recipe"]["title"] == "Seen"
    await ws.close()


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
@pytest.mark.parametrize("case", ["missing", "garbage", "expired", "other-key", "hs256"])
async def test_auth_failures_close_with_4403_before_anything_is_sent(
    server: LiveServer, rsa_keys: KeyPair, tmp_path: Any, protocol: str, case: str
) -> None:
    from tests.support import make_key_pair

    now = int(time.time())
    payload: dict[str, Any] = {
        "missing": {},
        "garbage": {"authorization": "Bearer nope"},
        "expired": {
            "authorization": "Bearer " + rsa_keys.token(extra={"exp": now - 100, "iat": now - 500})
        },
        "other-key": {"authorization": "Bearer " + make_key_pair(tmp_path).token(kid=None)},
        "hs256": {"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
    }[case]
    ws = await GraphQLWS.connect(server.url, protocol=protocol, payload=payload, ack=False)
    code, reason = await ws.close_code()
    assert code == 4403
    assert reason.startswith("Forbidden")


async def test_subscribe_before_init_is_refused(server: LiveServer) -> None:
    import websockets

    async with websockets.connect(
        server.url.replace("http", "ws") + "/graphql",
        subprotocols=[TRANSPORT],  # type: ignore[list-item]
    ) as raw:
        ws = GraphQLWS(raw, TRANSPORT)
        await ws.subscribe(CHANGES)
        code, _ = await ws.close_code()
    assert code == 4401


async def test_socket_is_closed_when_the_token_expires(
    server: LiveServer, rsa_keys: KeyPair
) -> None:
    token = rsa_keys.token(sub="alice", ttl_seconds=2)
    exp = int(token and __import__("jwt").decode(token, options={"verify_signature": False})["exp"])
    ws = await GraphQLWS.connect(server.url, payload={"authorization": f"Bearer {token}"})
    await ws.subscribe(CHANGES)
    code, reason = await ws.close_code(timeout=15)
    assert (code, reason) == (4440, "Token expired")
    assert time.time() >= exp - 0.05


@pytest.fixture
async def chatty_server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    async with serving(settings, ws_keepalive_seconds=0.2) as live:
        yield live


@pytest.mark.parametrize(("protocol", "keepalive"), [(TRANSPORT, "ping"), (LEGACY, "ka")])
async def test_server_sends_keepalives(
    chatty_server: LiveServer, rsa_keys: KeyPair, protocol: str, keepalive: str
) -> None:
    ws = await GraphQLWS.connect(
        chatty_server.url,
        protocol=protocol,
        payload={"authorization": f"Bearer {rsa_keys.token()}"},
    )
    for _ in range(3):
        assert (await ws.receive(skip_keepalive=False, timeout=5))["type"] == keepalive
    await ws.close()


async def test_viewers_only_receive_what_they_may_read(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    bob = await subscribe(server, runtime, rsa_keys, "bob")
    admin = await subscribe(server, runtime, rsa_keys, "root", roles=("admin",))
    await create(api, user="alice", id="private-1", title="Secret")
    await create(api, user="alice", id="public-1", title="Shared", visibility="PUBLIC")
    first = (await bob.next_data())["recipeChanged"]
    assert first["recipe"]["id"] == "public-1"  # never "private-1"
    seen_by_admin = [(await admin.next_data())["recipeChanged"]["recipe"]["id"] for _ in range(2)]
    assert seen_by_admin == ["private-1", "public-1"]
    await bob.close()
    await admin.close()


async def test_access_granted_and_revoked(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    bob = await subscribe(server, runtime, rsa_keys, "bob")
    recipe = await create(api, user="alice", id="shared", title="Family stew")

    async def edit(version: int, **fields: Any) -> None:
        await api.data(
            UPSERT,
            {
                "input": {
                    "id": "shared",
                    "expectedVersion": version,
                    "title": fields.pop("title", "Family stew"),
                    **fields,
                }
            },
        )

    await edit(1, collaborators=["bob"])
    granted = (await bob.next_data())["recipeChanged"]
    assert (granted["kind"], granted["version"]) == ("CREATED", 2)
    await edit(2, title="Family stew v3")
    assert (await bob.next_data())["recipeChanged"]["kind"] == "UPDATED"
    await edit(3, title="Secret new title", collaborators=[])
    revoked = (await bob.next_data())["recipeChanged"]
    assert (revoked["kind"], revoked["version"]) == ("DELETED", 4)
    assert revoked["recipe"]["title"] == "Family stew v3", "leaked the state bob may not read"
    assert revoked["recipe"]["deleted"] is True
    await edit(4, visibility="PUBLIC")
    public = (await bob.next_data())["recipeChanged"]
    assert (public["kind"], public["version"]) == ("CREATED", 5)
    await edit(5, visibility="PRIVATE")
    assert (await bob.next_data())["recipeChanged"]["kind"] == "DELETED"
    assert recipe["ownerId"] == "alice"
    await bob.close()


async def test_filters_ids_tags_owner(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    by_id = await subscribe(server, runtime, rsa_keys, variables={"filter": {"ids": ["b"]}})
    by_tag = await subscribe(server, runtime, rsa_keys, variables={"filter": {"tags": ["vegan"]}})
    by_owner = await subscribe(server, runtime, rsa_keys, variables={"filter": {"ownerId": "bob"}})
    await create(api, user="alice", id="a", title="A", tags=["vegan"])
    await create(api, user="alice", id="b", title="B")
    await create(api, user="bob", id="c", title="C", visibility="PUBLIC")
    assert (await by_id.next_data())["recipeChanged"]["recipe"]["id"] == "b"
    assert (await by_tag.next_data())["recipeChanged"]["recipe"]["id"] == "a"
    assert (await by_owner.next_data())["recipeChanged"]["recipe"]["id"] == "c"
    # Nothing else was queued for them: the next change they see is the next matching one.
    await create(api, user="alice", id="d", title="D", tags=["vegan"])
    assert (await by_tag.next_data())["recipeChanged"]["recipe"]["id"] == "d"
    for ws in (by_id, by_tag, by_owner):
        await ws.close()


async def test_changes_written_directly_to_mongodb_are_delivered(
    server: LiveServer, runtime: Any, rsa_keys: KeyPair, mongo: Any
) -> None:
    from datetime import UTC, datetime

    ws = await subscribe(server, runtime, rsa_keys, "alice")
    now = datetime.now(UTC)
    await mongo.recipes.insert_one(
        {
            "_id": "from-node",
            "title": "Written by the Node API",
            "owner_id": "alice",
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "deleted": False,
        }
    )
    await mongo.recipes.update_one(
        {"_id": "from-node"}, {"$set": {"title": "Edited by Node", "version": 2}}
    )
    created = (await ws.next_data())["recipeChanged"]
    updated = (await ws.next_data())["recipeChanged"]
    assert (created["kind"], created["recipe"]["title"]) == ("CREATED", "Written by the Node API")
    assert (updated["kind"], updated["recipe"]["title"]) == ("UPDATED", "Edited by Node")
    await ws.close()


@pytest.fixture
async def limited_server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    limited = settings.model_copy(
        update={
            "ws_max_connections_per_user": 2,
            "ws_max_subscriptions_per_connection": 2,
        }
    )
    live = LiveServer(create_app(limited))
    await live.start()
    yield live
    await live.stop()


async def test_connections_per_user_are_limited(
    limited_server: LiveServer, rsa_keys: KeyPair
) -> None:
    payload = {"authorization": f"Bearer {rsa_keys.token(sub='alice')}"}
    first = await GraphQLWS.connect(limited_server.url, payload=payload)
    second = await GraphQLWS.connect(limited_server.url, payload=payload)
    third = await GraphQLWS.connect(limited_server.url, payload=payload, ack=False)
    code, reason = await third.close_code()
    assert code == 4429 and "Too many connections" in reason
    other_user = await GraphQLWS.connect(
        limited_server.url, payload={"authorization": f"Bearer {rsa_keys.token(sub='bob')}"}
    )
    await first.close()
    again = await GraphQLWS.connect(limited_server.url, payload=payload)  # a slot came free
    for ws in (second, other_user, again):
        await ws.close()


async def test_subscriptions_per_connection_are_limited(
    limited_server: LiveServer, rsa_keys: KeyPair
) -> None:
    ws = await GraphQLWS.connect(
        limited_server.url, payload={"authorization": f"Bearer {rsa_keys.token()}"}
    )
    await ws.subscribe(CHANGES)
    await ws.subscribe(CHANGES)
    third = await ws.subscribe(CHANGES)
    message = await ws.receive()
    assert message["type"] == "error" and message["id"] == third
    assert "Subscription limit reached" in str(message["payload"])
    await ws.close()


async def test_unknown_subscription_field_is_an_error_not_a_crash(
    server: LiveServer, rsa_keys: KeyPair
) -> None:
    ws = await GraphQLWS.connect(
        server.url, payload={"authorization": f"Bearer {rsa_keys.token()}"}
    )
    op = await ws.subscribe("subscription { recipeChanged { nope } }")
    message = await ws.receive()
    assert message["type"] == "error" and message["id"] == op
    await ws.close()


async def test_http_client_keeps_working_beside_subscriptions(
    client: httpx.AsyncClient, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    ws = await subscribe(server, runtime, rsa_keys)
    metrics = (await client.get("/metrics")).text
    assert "larder_subscriptions 1.0" in metrics
    assert "larder_ws_connections 1.0" in metrics
    await ws.close()
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(0), 10)


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_lost_feed_position_tells_subscribers_to_refetch(
    server: LiveServer, runtime: Any, rsa_keys: KeyPair, protocol: str
) -> None:
    ws = await subscribe(server, runtime, rsa_keys, protocol=protocol)
    runtime.hub.reset("The change feed lost its position; refetch and resubscribe")
    message = await ws.receive()
    assert message["type"] == "error", message  # ends the operation; clients resubscribe
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else [payload]
    assert message["type"] in ("next", "data", "error"), message
    assert errors[0]["extensions"]["code"] == "RESYNC_REQUIRED"
    assert "refetch" in errors[0]["message"]
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(0), 10)
    await ws.close()


@pytest.fixture
async def small_queue_server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    live = LiveServer(
        create_app(
            settings.model_copy(update={"ws_subscriber_queue": 4, "max_body_bytes": 8_000_000})
        )
    )
    await live.start()
    yield live
    await live.stop()


async def test_slow_consumer_does_not_delay_a_fast_one(
    small_queue_server: LiveServer, rsa_keys: KeyPair, settings: Settings
) -> None:
    """A client that stops reading fills its TCP window; the server must keep serving others,
    drop the slow one's backlog (bounded memory) and tell it to refetch."""
    from tests.support import Api

    server = small_queue_server
    runtime = server.app.state.runtime
    token = rsa_keys.token(sub="alice")
    slow = await asyncio.to_thread(
        StuckClient,
        server.port,
        token,
        "subscription { recipeChanged { recipe { id description steps } } }",
    )
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(1), 10)
    fast = await subscribe(server, runtime, rsa_keys)  # registers the second subscriber
    big: dict[str, Any] = {"description": "d" * 10_000, "steps": ["s" * 5_000] * 200}  # ~1 MB
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        api = Api(http, rsa_keys)
        recipe = await create(api, title="v1", **big)
        assert (await fast.next_data())["recipeChanged"]["version"] == 1
        for version in range(1, 30):
            await api.data(
                UPSERT,
                {
                    "input": {
                        "id": recipe["id"],
                        "expectedVersion": version,
                        "title": f"v{version + 1}",
                    }
                },
            )
            event = (await fast.next_data(timeout=10))["recipeChanged"]
            assert event["version"] == version + 1  # the fast client keeps up, in order
    assert runtime.hub.overflowed >= 1, "the slow subscriber was never cut off"
    # When the slow client finally reads, it finds the end of its subscription and why.
    ended = await asyncio.to_thread(slow.drain_until_error)
    assert ended["extensions"]["code"] == "SUBSCRIPTION_OVERFLOW"
    assert "refetch" in ended["message"]
    slow.close()
    await fast.close()


@pytest.fixture
async def big_body_server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    async with serving(settings, max_body_bytes=8_000_000) as live:
        yield live


async def test_a_client_that_pauses_reading_gets_every_change_in_order(
    big_body_server: LiveServer, rsa_keys: KeyPair
) -> None:
    """A client that stops reading (its TCP window and the server's buffer fill up: ~20 MB
    here) while its queue has room gets every change, in order, once it reads again."""
    from tests.support import Api

    server = big_body_server
    runtime = server.app.state.runtime
    paused = await asyncio.to_thread(
        StuckClient,
        server.port,
        rsa_keys.token(sub="alice"),
        "subscription { recipeChanged { version recipe { description steps } } }",
    )
    await asyncio.wait_for(runtime.hub.wait_for_subscribers(1), 10)
    fast = await subscribe(server, runtime, rsa_keys)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        api = Api(http, rsa_keys)
        big: dict[str, Any] = {"description": "d" * 10_000, "steps": ["s" * 5_000] * 200}
        recipe = await create(api, title="v1", **big)  # ~1 MB per message
        for version in range(1, 20):
            await api.data(
                UPSERT,
                {"input": {"id": recipe["id"], "expectedVersion": version, "title": f"v{version}"}},
            )
        for version in range(1, 21):
            assert (await fast.next_data(timeout=10))["recipeChanged"]["version"] == version
    messages = await asyncio.to_thread(paused.read_messages, 20)
    versions = [m["payload"]["data"]["recipeChanged"]["version"] for m in messages]
    assert versions == list(range(1, 21))
    assert runtime.hub.overflowed == 0
    paused.close()
    await fast.close()


async def test_alike_subscribers_share_one_rendering(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    """Grouped fan-out: one execution per (operation, answer), not per subscriber."""
    subscribers = [
        await subscribe(server, runtime, rsa_keys, user)
        for user in ("alice", "bob", "carol", "alice")
    ]
    view_fanout = _fanout(server)
    before = view_fanout.renders
    await create(api, user="alice", id="pub", title="For everyone", visibility="PUBLIC")
    for ws in subscribers:
        assert (await ws.next_data())["recipeChanged"]["recipe"]["id"] == "pub"
    assert view_fanout.renders - before == 1
    # Taking bob's access away splits the answers: DELETED (old state) for bob vs UPDATED.
    await api.data(
        UPSERT,
        {
            "input": {
                "id": "pub",
                "expectedVersion": 1,
                "title": "Mine",
                "visibility": "PRIVATE",
                "collaborators": ["carol"],
            }
        },
    )
    kinds = [(await ws.next_data())["recipeChanged"] for ws in subscribers[:3]]
    assert [k["kind"] for k in kinds] == ["UPDATED", "DELETED", "UPDATED"]
    assert kinds[1]["recipe"]["title"] == "For everyone"
    assert view_fanout.renders - before == 3
    for ws in subscribers:
        await ws.close()


async def test_one_user_with_and_without_a_role_is_judged_apart(
    api: Api, server: LiveServer, runtime: Any, rsa_keys: KeyPair
) -> None:
    """Subscribers share a classification only when viewer id, roles and filter all match."""
    admin = await subscribe(server, runtime, rsa_keys, "alice", roles=("admin",))
    plain = await subscribe(server, runtime, rsa_keys, "alice")
    await create(api, user="bob", id="bobs", title="Private to bob")
    await create(api, user="bob", id="open", title="For everyone", visibility="PUBLIC")
    assert [(await admin.next_data())["recipeChanged"]["recipe"]["id"] for _ in range(2)] == [
        "bobs",
        "open",
    ]
    assert (await plain.next_data())["recipeChanged"]["recipe"]["id"] == "open"
    await admin.close()
    await plain.close()


def _fanout(server: LiveServer) -> Any:
    from app.http.graphql_view import LarderGraphQL

    app = server.app
    while not isinstance(app, LarderGraphQL):  # unwrap the ASGI guards around the view
        app = (
            app.app
            if hasattr(app, "app")
            else next(r.app for r in app.routes if getattr(r, "path", "") == "/graphql")
        )
    return app.fanout


@pytest.fixture
async def per_subscriber_server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    async with serving(settings, ws_grouped_fanout=False) as live:
        yield live


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_per_subscriber_execution_still_works(
    per_subscriber_server: LiveServer, rsa_keys: KeyPair, protocol: str
) -> None:
    server = per_subscriber_server
    runtime = server.app.state.runtime
    assert _fanout(server) is None
    ws = await subscribe(server, runtime, rsa_keys, protocol=protocol)
    async with httpx.AsyncClient(base_url=server.url) as http:
        api = Api(http, rsa_keys)
        recipe = await create(api, title="Slow path")
        await api.data(DELETE, {"id": recipe["id"], "v": 1})
    kinds = [(await ws.next_data())["recipeChanged"]["kind"] for _ in range(2)]
    assert kinds == ["CREATED", "DELETED"]
    await ws.close()


async def test_a_token_past_exp_but_within_leeway_is_told_to_refresh_at_once(
    server: LiveServer, rsa_keys: KeyPair
) -> None:
    now = int(time.time())
    token = rsa_keys.token(extra={"exp": now - 5, "iat": now - 600})  # leeway is 30 s
    ws = await GraphQLWS.connect(
        server.url, payload={"authorization": f"Bearer {token}"}, ack=False
    )
    assert await ws.close_code() == (4440, "Token expired")
