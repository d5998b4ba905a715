from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from app.embedded import EmbeddedDatabase
from app.main import create_app
from app.settings import Settings
from tests.processes import ServerProcess
from tests.support import Api, KeyPair, LiveServer, make_key_pair


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    """MONGODB_URI when set, else an embedded SecantusDB daemon for the whole session."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    with EmbeddedDatabase(storage=":memory:") as database:
        yield database.uri


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def rsa_keys(key_dir: Path) -> KeyPair:
    return make_key_pair(key_dir, "rsa")


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo(mongodb_uri: str, db_name: str) -> AsyncIterator[Any]:
    """Direct pymongo access to the test's database (to check what was really written)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    yield client.get_database(db_name)
    await client.drop_database(db_name)
    await client.close()


@pytest.fixture
def settings(mongodb_uri: str, db_name: str, rsa_keys: KeyPair, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_uri=mongodb_uri,
        mongodb_db=db_name,
        data_dir=tmp_path / "data",
        jwt_public_key_file=rsa_keys.public_path,
    )


@pytest.fixture
async def server(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    live = LiveServer(create_app(settings))
    await live.start()
    yield live
    await live.stop()


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient, rsa_keys: KeyPair) -> Api:
    return Api(client, rsa_keys)


@pytest.fixture
def runtime(server: LiveServer) -> Any:
    """The running app's runtime (hub, limiter), to await readiness without sleeping."""
    return server.app.state.runtime


@pytest.fixture
def serve(mongodb_uri: str, db_name: str, tmp_path: Path, mongo: Any) -> Iterator[Any]:
    """`serve(**env)` starts `python -m app serve` on the test database with DATA_DIR in
    tmp_path (and no key: development makes one); each is stopped, and must exit 0."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        base = {"MONGODB_URI": mongodb_uri, "MONGODB_DB": db_name, "DATA_DIR": str(tmp_path)}
        server = ServerProcess({**base, **env}, tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.stop() == 0
