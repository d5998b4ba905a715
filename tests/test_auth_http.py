"""Every auth failure over real HTTP gets 401 with a GraphQL error body and no data."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support import Api, KeyPair, LiveServer, make_key_pair

ME = "{ me { id roles } }"


def assert_unauthenticated(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": reason}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_valid_token_identifies_the_viewer(api: Api) -> None:
    data = await api.data(ME, user="carol", roles=["admin", "editor"])
    assert data["me"] == {"id": "carol", "roles": ["admin", "editor"]}


async def test_missing_token(api: Api) -> None:
    assert_unauthenticated(await api.post(ME, token=None), "missing")


async def test_wrong_scheme(api: Api) -> None:
    response = await api.client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Basic YWxpY2U6cHc="}
    )
    assert_unauthenticated(response, "malformed")


async def test_garbage_token(api: Api) -> None:
    assert_unauthenticated(await api.post(ME, token="not-a-jwt"), "malformed")


async def test_signed_by_another_key(api: Api, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "rsa")
    assert_unauthenticated(await api.post(ME, token=other.token(kid=None)), "bad_signature")


async def test_expired(api: Api, rsa_keys: KeyPair) -> None:
    token = rsa_keys.token(extra={"exp": int(time.time()) - 120, "iat": int(time.time()) - 600})
    assert_unauthenticated(await api.post(ME, token=token), "expired")


@pytest.mark.parametrize("claim", ["exp", "iat", "sub"])
async def test_required_claims(api: Api, rsa_keys: KeyPair, claim: str) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 60}
    del claims[claim]
    token = jwt.encode(claims, rsa_keys.private, algorithm="RS256")  # type: ignore[arg-type]
    assert_unauthenticated(await api.post(ME, token=token), "claims")


async def test_alg_none_is_refused(api: Api) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, None, algorithm="none")  # type: ignore[arg-type]
    assert_unauthenticated(await api.post(ME, token=token), "algorithm")


async def test_hs256_signed_with_the_public_key_is_refused(api: Api, rsa_keys: KeyPair) -> None:
    """The classic algorithm-confusion attack: HMAC keyed with the (public) PEM bytes."""
    now = int(time.time())
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = base64.urlsafe_b64encode(
        json.dumps({"sub": "mallory", "iat": now, "exp": now + 60, "roles": ["admin"]}).encode()
    )
    import hashlib
    import hmac

    signing_input = header.rstrip(b"=") + b"." + payload.rstrip(b"=")
    signature = hmac.new(rsa_keys.public_path.read_bytes(), signing_input, hashlib.sha256)
    token = (
        signing_input + b"." + base64.urlsafe_b64encode(signature.digest()).rstrip(b"=")
    ).decode()
    assert_unauthenticated(await api.post(ME, token=token), "algorithm")


async def test_tampered_payload_is_refused(api: Api, rsa_keys: KeyPair) -> None:
    header, _payload, signature = rsa_keys.token(sub="alice").split(".")
    now = int(time.time())
    forged = (
        base64.urlsafe_b64encode(
            json.dumps({"sub": "alice", "iat": now, "exp": now + 60, "roles": ["admin"]}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    response = await api.post(ME, token=f"{header}.{forged}.{signature}")
    assert_unauthenticated(response, "bad_signature")


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


async def test_graphiql_page_loads_without_token_and_without_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith(("/graphiql-static/", "data:")) for a in assets), assets
    asset = await client.get("/graphiql-static/graphiql.min.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] not in ("", "bad id with spaces")


# ------------------------------------------------------ issuer / audience configured


@pytest.fixture
async def strict_client(settings: Settings, mongo: Any) -> AsyncIterator[httpx.AsyncClient]:
    strict = settings.model_copy(
        update={"jwt_issuer": "https://id.example", "jwt_audience": "larder"}
    )
    live = LiveServer(create_app(strict))
    await live.start()
    async with httpx.AsyncClient(base_url=live.url) as http:
        yield http
    await live.stop()


@pytest.mark.parametrize(
    ("issuer", "audience", "status", "reason"),
    [
        ("https://id.example", "larder", 200, None),
        ("https://evil.example", "larder", 401, "issuer"),
        (None, "larder", 401, "claims"),
        ("https://id.example", "other-app", 401, "audience"),
        ("https://id.example", None, 401, "claims"),
    ],
)
async def test_issuer_and_audience_enforced_when_configured(
    strict_client: httpx.AsyncClient,
    rsa_keys: KeyPair,
    issuer: str | None,
    audience: str | None,
    status: int,
    reason: str | None,
) -> None:
    token = rsa_keys.token(issuer=issuer, audience=audience)
    response = await strict_client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
    )
    if reason is None:
        assert response.status_code == status and response.json()["data"]["me"]["id"] == "alice"
    else:
        assert_unauthenticated(response, reason)
