"""Rate limits, time limits, database faults, graceful shutdown, metrics and logs."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.auth.keys import load_private_pem
from app.embedded import EmbeddedDatabase
from app.main import create_app
from app.settings import Settings
from tests.processes import ServerProcess, free_port
from tests.support import UPSERT, Api, KeyPair, LiveServer, create
from tests.wsclient import CHANGES, TRANSPORT, GraphQLWS


@pytest.fixture
async def strict(settings: Settings, mongo: Any, rsa_keys: KeyPair) -> AsyncIterator[LiveServer]:
    live = LiveServer(
        create_app(
            settings.model_copy(
                update={
                    "rate_limit_mutations_per_second": 0.01,
                    "rate_limit_mutations_burst": 3,
                    "rate_limit_ws_connects_per_second": 0.01,
                    "rate_limit_ws_connects_burst": 2,
                }
            )
        )
    )
    await live.start()
    yield live
    await live.stop()


async def test_mutations_are_rate_limited_per_user(
    strict: LiveServer, rsa_keys: KeyPair, mongo: Any
) -> None:
    async with httpx.AsyncClient(base_url=strict.url) as http:
        api = Api(http, rsa_keys)
        for i in range(3):
            await create(api, id=f"ok{i}")
        response = await api.post(
            UPSERT, {"input": {"title": "one too many"}}, token=api.token("alice")
        )
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] > 0
        assert await mongo.recipes.count_documents({}) == 3
        # Reads are not limited, and other users have their own bucket.
        assert (await api.data("{ me { id } }"))["me"]["id"] == "alice"
        await create(api, user="bob", id="bobs")
        metrics = (await http.get("/metrics")).text
        assert 'larder_rate_limited_total{kind="mutation"} 1.0' in metrics


async def test_websocket_connects_are_rate_limited(strict: LiveServer, rsa_keys: KeyPair) -> None:
    payload = {"authorization": f"Bearer {rsa_keys.token(sub='alice')}"}
    first = await GraphQLWS.connect(strict.url, payload=payload)
    second = await GraphQLWS.connect(strict.url, payload=payload)
    third = await GraphQLWS.connect(strict.url, payload=payload, ack=False)
    code, reason = await third.close_code()
    assert code == 1013 and "retry in" in reason  # retryable for graphql-ws clients
    await first.close()
    await second.close()


@pytest.fixture
async def impatient(settings: Settings, mongo: Any) -> AsyncIterator[LiveServer]:
    live = LiveServer(
        create_app(settings.model_copy(update={"operation_timeout_seconds": 0.000001}))
    )
    await live.start()
    yield live
    await live.stop()


async def test_operations_over_the_time_limit_get_504(
    impatient: LiveServer, rsa_keys: KeyPair
) -> None:
    async with httpx.AsyncClient(base_url=impatient.url) as http:
        response = await Api(http, rsa_keys).post(
            "{ recipes { totalCount } }", token=rsa_keys.token()
        )
    assert response.status_code == 504
    assert response.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"


async def test_database_unreachable_at_startup_then_recovering(
    rsa_keys: KeyPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    settings = Settings(
        _env_file=None,
        mongodb_uri=f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false",
        mongodb_db="late",
        jwt_public_key_file=rsa_keys.public_path,
        mongodb_timeout_seconds=0.5,
    )
    app = create_app(settings)
    live = LiveServer(app)
    await live.server.startup(sockets=[live.sock])  # no database yet: must still start
    runtime = app.state.runtime
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json() == {"ready": False}
            started = time.monotonic()
            response = await Api(http, rsa_keys).post("{ me { id } }", token=rsa_keys.token())
            assert time.monotonic() - started < 2, "requests must fail fast, not hang"
            assert response.status_code == 503
            assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert response.headers["retry-after"]
            async with websockets.connect(
                live.url.replace("http", "ws") + "/graphql",
                subprotocols=[TRANSPORT],  # type: ignore[list-item]
            ) as raw:
                closed = await GraphQLWS(raw, TRANSPORT).close_code()
            assert closed == (1013, "Database unavailable; try again shortly")
            with EmbeddedDatabase(storage=":memory:", port=port):
                await asyncio.wait_for(runtime.ready.wait(), 60)
                assert (await http.get("/readyz")).json() == {"ready": True}
                data = await Api(http, rsa_keys).data("{ me { id } }")
                assert data["me"]["id"] == "alice"
    finally:
        await live.stop()
    assert any("database unreachable, retrying" in r.getMessage() for r in caplog.records)


async def test_requests_fail_fast_while_the_database_restarts(
    rsa_keys: KeyPair, tmp_path: Path
) -> None:
    database = EmbeddedDatabase(storage=str(tmp_path / "db")).start()
    server = ServerProcess(
        {
            "MONGODB_URI": database.uri,
            "MONGODB_DB": "larder",
            "APP_ENV": "production",
            "JWT_PUBLIC_KEY_FILE": str(rsa_keys.public_path),
            "LOG_LEVEL": "INFO",
            "MONGODB_TIMEOUT_SECONDS": "1",
        },
        tmp_path,
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            api = Api(http, rsa_keys)
            acknowledged = await create(api, id="before", title="Acknowledged")
            port = database.port
            database.stop()
            started = time.monotonic()
            body = await api.gql(UPSERT, {"input": {"id": "during", "title": "x"}})
            assert time.monotonic() - started < 5
            assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            database = EmbeddedDatabase(storage=str(tmp_path / "db"), port=port).start()
            after = await create(api, id="after", title="After")
            got = await api.data('query { recipe(id: "before") { title version } }')
            assert got["recipe"] == {"title": acknowledged["title"], "version": 1}
            assert after["version"] == 1
            assert (await api.data('query { recipe(id: "during") { id } }'))["recipe"] is None
    finally:
        code = server.stop()
        database.stop()
    assert code == 0


async def test_sigterm_closes_websockets_with_1001_and_stops_the_embedded_database(
    tmp_path: Path,
) -> None:
    """Development mode: the server runs its own embedded database and key."""
    server = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO"}, tmp_path
    ).start()
    assert server.process is not None
    keys = tmp_path / "data" / "keys"
    token = KeyPair(load_private_pem(keys / "private.pem"), keys / "public.pem").token()
    ws = await GraphQLWS.connect(server.url, payload={"authorization": f"Bearer {token}"})
    await ws.subscribe(CHANGES)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code, reason = await ws.close_code(timeout=30)
    assert code == 1001 and "shutting down" in reason
    assert server.stop() == 0
    assert time.monotonic() - started < 20
    leftover = await asyncio.create_subprocess_exec(
        "pgrep", "-f", str(tmp_path / "data" / "db"), stdout=asyncio.subprocess.DEVNULL
    )
    assert await leftover.wait() == 1, "the embedded database outlived the server"


async def test_metrics_and_access_logs(
    api: Api, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="larder.access")
    recipe = await create(api, title="Secret family recipe")
    await api.gql(UPSERT, {"input": {"id": recipe["id"], "expectedVersion": 7, "title": "x"}})
    await api.post("{ me { id } }", token="garbage")
    response = await client.post(
        "/graphql",
        json={"query": "query WhoAmI { me { id } }"},
        headers={"Authorization": f"Bearer {api.token('alice')}", "X-Request-ID": "trace-1"},
    )
    assert response.status_code == 200
    text = (await client.get("/metrics")).text
    assert re.search(
        r'larder_graphql_operations_total\{name="Upsert",outcome="OK",type="mutation"\} 2.0', text
    )
    assert 'larder_version_conflicts_total{operation="upsertRecipe"} 1.0' in text
    assert 'larder_auth_failures_total{reason="malformed",transport="http"} 1.0' in text
    assert "larder_graphql_duration_seconds_bucket" in text
    assert "larder_change_feed_lag_seconds_count" in text
    logged = [r for r in caplog.records if r.name == "larder.access"]
    who = [r for r in logged if getattr(r, "operation", None) == "WhoAmI"]
    assert who and who[0].request_id == "trace-1" and who[0].user == "alice"  # type: ignore[attr-defined]
    assert who[0].outcome == "OK" and who[0].duration_ms >= 0  # type: ignore[attr-defined]
    everything = " ".join(str(r.__dict__) for r in caplog.records)
    assert "Secret family recipe" not in everything
    assert api.token("alice") not in everything


def test_the_embedded_database_dies_with_a_killed_server(tmp_path: Path) -> None:
    """kill -9 gives the server no chance to stop its database: the kernel does it
    (PR_SET_PDEATHSIG), so no orphan keeps the data directory locked."""
    server = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO"}, tmp_path
    ).start()
    assert server.process is not None
    found = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "data" / "db")], capture_output=True, text=True, check=True
    )
    daemon = Path(f"/proc/{found.stdout.split()[0]}")
    server.process.kill()
    server.stop()
    # Across processes there is no event to await: poll the daemon's exit, bounded.
    deadline = time.monotonic() + 30
    while daemon.exists() and _state(daemon) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not daemon.exists() or _state(daemon) == "Z", "the database outlived its server"


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"
