"""Test helpers: real keys, real tokens, a real uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from starlette.types import ASGIApp

from app.auth.keys import KeyType, generate_private_key, key_id
from app.auth.tokens import mint_token
from app.main import create_app
from app.settings import DEFAULT_WS_PROTOCOL, Settings


@dataclass
class KeyPair:
    private: PrivateKeyTypes
    public_path: Path

    def token(self, sub: str = "alice", roles: Sequence[str] = (), **kwargs: Any) -> str:
        kwargs.setdefault("kid", key_id(self.private.public_key()))
        return mint_token(self.private, sub=sub, roles=roles, **kwargs)


def make_key_pair(directory: Path, key_type: KeyType = "rsa") -> KeyPair:
    from cryptography.hazmat.primitives import serialization

    private = generate_private_key(key_type)
    directory.mkdir(parents=True, exist_ok=True)
    public_path = directory / f"{key_type}-public.pem"
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private=private, public_path=public_path)


class LiveServer:
    """uvicorn serving an ASGI app on 127.0.0.1, in the test's event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app: Any = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", ws_ping_interval=None, ws=DEFAULT_WS_PROTOCOL
        )
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        if self.server.should_exit:
            raise RuntimeError("server failed to start")
        runtime = getattr(getattr(self.app, "state", None), "runtime", None)
        if runtime is not None:  # connected to the database in the background
            await asyncio.wait_for(runtime.ready.wait(), 60)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.server.shutdown(sockets=[self.sock])


@asynccontextmanager
async def serving(settings: Settings, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A real server for `settings` with some of them changed, for as long as the block."""
    live = LiveServer(create_app(settings.model_copy(update=overrides)))
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


class Api:
    """A GraphQL-over-HTTP client with a token per user."""

    def __init__(self, client: httpx.AsyncClient, keys: KeyPair) -> None:
        self.client = client
        self.keys = keys

    def token(self, user: str, roles: Sequence[str] = ()) -> str:
        return self.keys.token(sub=user, roles=roles)

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        user: str = "alice",
        roles: Sequence[str] = (),
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token=self.token(user, roles))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = await self.gql(query, variables, **kw)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = await self.gql(query, variables, **kw)
        assert body.get("errors"), body
        return body["errors"][0]


RECIPE_FIELDS = """
  id title description ingredients { name quantity unit note } steps tags servings
  prepMinutes cookMinutes imageUrl ownerId collaborators visibility version createdAt
  updatedAt deleted
"""

UPSERT = f"""
mutation Upsert($input: RecipeInput!) {{
  upsertRecipe(input: $input) {{
    __typename
    ... on Recipe {{ {RECIPE_FIELDS} }}
    ... on VersionConflict {{ id expectedVersion currentVersion current {{ {RECIPE_FIELDS} }} }}
  }}
}}
"""

DELETE = """
mutation Delete($id: ID!, $v: Int!) {
  deleteRecipe(id: $id, expectedVersion: $v) {
    __typename
    ... on RecipeDeleted { id version }
    ... on VersionConflict { id expectedVersion currentVersion }
  }
}
"""

GET = f"query Get($id: ID!) {{ recipe(id: $id) {{ {RECIPE_FIELDS} }} }}"

LIST = """
query List($filter: RecipeFilter, $first: Int, $after: String) {
  recipes(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id title version updatedAt ownerId tags } }
  }
}
"""


async def create(api: Api, user: str = "alice", **fields: Any) -> dict[str, Any]:
    fields.setdefault("title", "Pancakes")
    data = await api.data(UPSERT, {"input": fields}, user=user)
    result: dict[str, Any] = data["upsertRecipe"]
    assert result["__typename"] == "Recipe", result
    return result


def unix_now() -> int:
    return int(time.time())
