"""Hostile input: each gets a clear error, nothing is written, and the next request works."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from app.main import create_app
from app.settings import Settings
from tests.support import UPSERT, Api, KeyPair, LiveServer
from tests.wsclient import TRANSPORT, GraphQLWS

ME = "{ me { id } }"


async def assert_still_serving(api: Api, mongo: Any) -> None:
    assert (await api.data(ME))["me"]["id"] == "alice"
    assert await mongo.recipes.count_documents({}) == 0


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.get("data") is None, body
    error: dict[str, Any] = body["errors"][0]
    assert error["message"]
    assert error["extensions"]["code"], error
    return error


async def raw(
    api: Api,
    content: bytes | str,
    content_type: str = "application/json",
    method: str = "POST",
    **params: str,
) -> httpx.Response:
    return await api.client.request(
        method,
        "/graphql",
        content=content,
        params=params or None,
        headers={
            "Authorization": f"Bearer {api.token('alice')}",
            "Content-Type": content_type,
            "Accept": "application/json",
        },
    )


async def test_invalid_json(api: Api, mongo: Any) -> None:
    response = await raw(api, b'{"query": "mutation {')
    assert response.status_code == 400
    assert error_of(response)["extensions"]["code"] == "BAD_REQUEST"
    await assert_still_serving(api, mongo)


async def test_wrong_content_type(api: Api, mongo: Any) -> None:
    response = await raw(api, "mutation { x }", content_type="text/plain")
    assert response.status_code in (400, 415)
    error_of(response)
    await assert_still_serving(api, mongo)


async def test_mutation_over_get_is_refused(api: Api, mongo: Any) -> None:
    response = await raw(
        api,
        b"",
        method="GET",
        query='mutation { upsertRecipe(input: {title: "x"}) { __typename } }',
    )
    assert response.status_code in (400, 405)
    error_of(response)
    await assert_still_serving(api, mongo)


async def test_invalid_variables(api: Api, mongo: Any) -> None:
    for variables in ({"input": {"title": 5}}, {"input": "nope"}, {"input": None}, {}):
        body = (await api.post(UPSERT, variables, token=api.token("alice"))).json()
        assert body["errors"] and body.get("data") is None, variables
    await assert_still_serving(api, mongo)


async def test_huge_strings(api: Api, mongo: Any) -> None:
    body = await api.gql(UPSERT, {"input": {"title": "x" * 100_000, "tags": ["y" * 100_000]}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    await assert_still_serving(api, mongo)


@pytest.fixture
async def shallow(settings: Settings, mongo: Any, rsa_keys: KeyPair) -> AsyncIterator[Api]:
    """The schema is not recursive (its deepest path is 5), so test the limit at 3."""
    live = LiveServer(create_app(settings.model_copy(update={"max_query_depth": 3})))
    await live.start()
    async with httpx.AsyncClient(base_url=live.url) as http:
        yield Api(http, rsa_keys)
    await live.stop()


async def test_deeply_nested_query(shallow: Api, mongo: Any) -> None:
    query = "{ recipes { edges { node { ingredients { name } } } } }"
    body = await shallow.gql(query)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert "errors" not in await shallow.gql("{ recipes { edges { cursor } } }")
    await assert_still_serving(shallow, mongo)


async def test_graphiql_introspection_fits_the_depth_limit(api: Api) -> None:
    from graphql import get_introspection_query

    body = await api.gql(get_introspection_query(descriptions=True))
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_thousands_of_aliases(api: Api, mongo: Any) -> None:
    thousands = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(2_000)) + " }"
    assert (await api.gql(thousands))["errors"]  # refused (by the token limit first)
    hundred = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(100)) + " }"
    assert "aliases" in (await api.gql(hundred))["errors"][0]["message"].lower()
    await assert_still_serving(api, mongo)


async def test_too_many_tokens(api: Api, mongo: Any) -> None:
    query = "{ me { " + "id " * 3_000 + "} }"
    body = await api.gql(query)
    assert "token" in body["errors"][0]["message"].lower()
    await assert_still_serving(api, mongo)


async def test_unknown_fields(api: Api, mongo: Any) -> None:
    body = await api.gql("{ recipes { edges { node { secretField } } } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    body = await api.gql(UPSERT, {"input": {"title": "x", "ownerId": "mallory"}})
    assert body["errors"]
    await assert_still_serving(api, mongo)


async def test_body_over_the_limit_gets_413(api: Api, mongo: Any) -> None:
    payload = json.dumps(
        {"query": UPSERT, "variables": {"input": {"title": "x", "description": "d" * 1_100_000}}}
    )
    response = await raw(api, payload)
    assert response.status_code == 413
    assert error_of(response)["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    await assert_still_serving(api, mongo)


async def test_huge_bearer_token(api: Api, mongo: Any) -> None:
    response = await api.post(ME, token="a" * 100_000)
    assert response.status_code == 401
    await assert_still_serving(api, mongo)


async def test_subscription_over_http_is_a_clear_error(api: Api, mongo: Any) -> None:
    response = await api.post("subscription { recipeChanged { kind } }", token=api.token("alice"))
    assert response.status_code == 400
    assert "WebSocket" in error_of(response)["message"]
    await assert_still_serving(api, mongo)


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (["{not json"], 4400),
        (
            [{"type": "connection_init", "payload": {"authorization": "{t}"}}, {"type": "bogus"}],
            4400,
        ),
        (
            [
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { recipeChanged { kind } }"},
                }
            ],
            4401,
        ),
        (
            [
                {"type": "connection_init", "payload": {"authorization": "{t}"}},
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { recipeChanged { kind } }"},
                },
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { recipeChanged { kind } }"},
                },
            ],
            4409,
        ),
        (
            [
                {"type": "connection_init", "payload": {"authorization": "{t}"}},
                {"type": "connection_init", "payload": {"authorization": "{t}"}},
            ],
            4429,
        ),
    ],
    ids=["bad-json", "unknown-type", "subscribe-before-init", "duplicate-id", "double-init"],
)
async def test_wrong_websocket_messages_close_with_a_code(
    api: Api, mongo: Any, messages: list[Any], code: int
) -> None:
    url = str(api.client.base_url).replace("http", "ws") + "/graphql"
    token = f"Bearer {api.token('alice')}"
    async with websockets.connect(url, subprotocols=[TRANSPORT]) as connection:  # type: ignore[list-item]
        ws = GraphQLWS(connection, TRANSPORT)
        for message in messages:
            if isinstance(message, str):
                await connection.send(message)
            else:
                text = json.dumps(message).replace('"{t}"', json.dumps(token))
                await connection.send(text)
        closed, _ = await ws.close_code(allow=("connection_ack",))
    assert closed == code
    await assert_still_serving(api, mongo)
