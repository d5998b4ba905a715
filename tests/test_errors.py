"""Unexpected errors are masked for clients and logged with the request id."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support import GET, Api


async def test_internal_error_is_masked_and_logged_with_request_id(
    api: Api, mongo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A document another program wrote badly (title is not a string) breaks the resolver.
    await mongo.recipes.insert_one({"_id": "corrupt", "title": 42, "owner_id": "alice"})
    response = await api.client.post(
        "/graphql",
        json={"query": GET, "variables": {"id": "corrupt"}},
        headers={"Authorization": f"Bearer {api.token('alice')}", "X-Request-ID": "req-42"},
    )
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "validation" not in response.text.lower() and "42" not in error["message"]
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(getattr(r, "request_id", None) == "req-42" and r.exc_info for r in logged)


async def test_graphql_syntax_errors_keep_a_code(api: Api) -> None:
    body = await api.gql("{ recipes { nope } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
