"""GRAPHQL_INTROSPECTION: on in development, off in production, and GraphiQL follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings
from tests.support import Api, KeyPair, LiveServer

SCHEMA_QUERY = "{ __schema { queryType { name } } }"
TYPE_QUERY = '{ __type(name: "Recipe") { name } }'
TYPENAME_QUERY = "{ __typename me { __typename id } }"
HTML = {"Accept": "text/html"}


@pytest.fixture
async def closed_api(settings: Settings, mongo: Any, rsa_keys: KeyPair) -> AsyncIterator[Api]:
    """A production server: introspection off by default."""
    live = LiveServer(create_app(settings.model_copy(update={"app_env": "production"})))
    await live.start()
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        yield Api(http, rsa_keys)
    await live.stop()


def test_the_default_follows_app_env() -> None:
    assert Settings(_env_file=None).introspection_enabled
    assert not Settings(_env_file=None, app_env="production").introspection_enabled
    assert Settings(
        _env_file=None, app_env="production", graphql_introspection=True
    ).introspection_enabled
    assert not Settings(_env_file=None, graphql_introspection=False).introspection_enabled
    with pytest.raises(ValidationError, match="graphql_introspection"):
        Settings(_env_file=None, graphql_introspection="maybe")


async def test_development_answers_introspection_and_serves_graphiql(api: Api) -> None:
    data = await api.data(SCHEMA_QUERY)
    assert data["__schema"]["queryType"]["name"] == "Query"
    assert (await api.data(TYPE_QUERY))["__type"] == {"name": "Recipe"}
    page = await api.client.get("/graphql", headers=HTML)
    assert page.status_code == 200 and "graphiql.min.js" in page.text


async def test_production_refuses_introspection_but_not_typename(closed_api: Api) -> None:
    for query, field in ((SCHEMA_QUERY, "__schema"), (TYPE_QUERY, "__type")):
        body = await closed_api.gql(query)
        assert body.get("data") is None
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "INTROSPECTION_DISABLED"
        assert field in error["message"] and "schema.graphql" in error["message"]
    # A repeated document is refused again (validation results are cached per document).
    again = await closed_api.gql(SCHEMA_QUERY)
    assert again["errors"][0]["extensions"]["code"] == "INTROSPECTION_DISABLED"
    data = await closed_api.data(TYPENAME_QUERY, user="zoe")
    assert data == {"__typename": "Query", "me": {"__typename": "Viewer", "id": "zoe"}}


async def test_production_serves_no_graphiql(closed_api: Api) -> None:
    page = await closed_api.client.get("/graphql", headers=HTML)
    assert page.status_code == 404
    assert "GraphiQL is disabled" in page.text and "GRAPHQL_INTROSPECTION" in page.text
    assert "graphiql.min.js" not in page.text


async def test_introspection_can_be_turned_off_in_development(
    settings: Settings, mongo: Any, rsa_keys: KeyPair
) -> None:
    live = LiveServer(create_app(settings.model_copy(update={"graphql_introspection": False})))
    await live.start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            error = await Api(http, rsa_keys).error(SCHEMA_QUERY)
            assert error["extensions"]["code"] == "INTROSPECTION_DISABLED"
            assert (await http.get("/graphql", headers=HTML)).status_code == 404
    finally:
        await live.stop()
