"""GraphiQL opens signed in as the dev user only in development on a loopback address."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.verifier import ConfigurationError, TokenVerifier
from app.graphiql import DevSignIn
from app.http.loopback import host_header_is_loopback, is_loopback
from app.main import create_app
from app.settings import Settings
from tests.processes import ServerProcess
from tests.support import KeyPair

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
HTML = {"Accept": "text/html"}


def _page(server: ServerProcess) -> str:
    response = httpx.get(f"{server.url}/graphql", headers=HTML, timeout=30)
    assert response.status_code == 200 and "graphiql.min.js" in response.text
    signed_in = JWT.search(response.text) is not None
    assert (response.headers.get("cache-control") == "no-store") is signed_in
    return response.text


def _banner_token(server: ServerProcess) -> str:
    found = JWT.search(server.wait_for_line('"Authorization": "Bearer '))
    assert found is not None
    return found.group(0)


def test_loopback_development_page_is_signed_in_with_the_startup_token(
    serve: Any, tmp_path: Path
) -> None:
    server = serve()  # HOST defaults to 127.0.0.1
    page = _page(server)
    embedded = set(JWT.findall(page))
    assert embedded == {_banner_token(server)}
    verifier = TokenVerifier.from_settings(
        Settings(_env_file=None, jwt_public_key_file=tmp_path / "keys" / "public.pem")
    )
    principal = asyncio.run(verifier.verify(embedded.pop()))
    assert principal.id == "dev" and not principal.is_admin
    for operation in ("mutation Create", "query List", "mutation Update", "mutation Delete"):
        assert operation in page
    assert "subscription Watch" in page
    # Asked for under another name (DNS rebinding: evil.example resolving to 127.0.0.1),
    # the same server serves the page without the token.
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example"):
        rebound = httpx.get(f"{server.url}/graphql", headers={**HTML, "Host": host})
        assert rebound.status_code == 200 and "graphiql.min.js" in rebound.text
        assert JWT.search(rebound.text) is None and "mutation Create" not in rebound.text
    for host in ("localhost", f"localhost:{server.port}", f"[::1]:{server.port}"):
        local = httpx.get(f"{server.url}/graphql", headers={**HTML, "Host": host})
        assert set(JWT.findall(local.text)) == {_banner_token(server)}
    # The page holds the token; no endpoint hands out another one.
    assert JWT.search(httpx.get(f"{server.url}/graphql?query=%7B__typename%7D").text) is None


def test_development_on_another_address_embeds_no_token(serve: Any) -> None:
    server = serve(HOST="0.0.0.0")  # reachable from the network: no sign-in
    assert "opens signed in" not in "".join(server.lines)
    page = _page(server)
    assert JWT.search(page) is None and "mutation Create" not in page
    assert _banner_token(server)  # still printed for pasting, as before


def test_production_embeds_no_token(serve: Any, rsa_keys: KeyPair) -> None:
    server = serve(
        APP_ENV="production",
        GRAPHQL_INTROSPECTION="true",
        JWT_PUBLIC_KEY_FILE=str(rsa_keys.public_path),
    )
    page = _page(server)
    assert JWT.search(page) is None and "mutation Create" not in page
    assert "Bearer" not in "".join(server.lines)


def test_create_app_refuses_a_sign_in_in_production(settings: Settings) -> None:
    production = settings.model_copy(update={"app_env": "production"})
    with pytest.raises(ConfigurationError, match="production"):
        create_app(production, dev_sign_in=DevSignIn("dev", "x.y.z"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    port = f"[{host.strip('[]')}]:8000" if ":" in host else f"{host}:8000"
    assert host_header_is_loopback(port) is loopback


def test_host_headers_that_are_not_loopback() -> None:
    for value in (None, "", "[::1", "localhost.evil.example:80", "127.0.0.1@evil.example"):
        assert not host_header_is_loopback(value), value
