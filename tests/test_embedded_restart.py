"""`serve` on the embedded database: when the daemon dies (kill -9), `serve` starts it again
on the same port and storage, and the same server process answers again without a restart,
with every write acknowledged before the crash still there."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from app.auth.keys import load_private_pem
from tests.processes import ServerProcess
from tests.support import KeyPair
from tests.test_workers import _alive, pgrep, write

RECIPES = """{ recipes(first: 100) { edges { node { id title } } } }"""


async def titles(http: httpx.AsyncClient, token: str) -> set[str]:
    response = await http.post(
        "/graphql", json={"query": RECIPES}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return {e["node"]["title"] for e in response.json()["data"]["recipes"]["edges"]}


async def test_a_killed_embedded_database_is_started_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess({"DATA_DIR": str(data)}, tmp_path).start()
    try:
        keys = data / "keys"
        token = KeyPair(load_private_pem(keys / "private.pem"), keys / "public.pem").token()
        (daemon,) = map(int, await pgrep(str(data / "db")))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            server_pid = (await http.get("/healthz")).json()["pid"]
            acknowledged = {
                (await write(http, token, f"Before the crash {n}"))["title"] for n in range(5)
            }

            os.kill(daemon, signal.SIGKILL)
            server.wait_for_line("the embedded SecantusDB exited")
            server.wait_for_line("the embedded SecantusDB is back on port")
            (restarted,) = map(int, await pgrep(str(data / "db")))
            assert restarted != daemon and not _alive(daemon)

            # The server's pooled connections went with the old daemon: the first requests
            # may fail while pymongo notices; the service must answer again on its own.
            async with asyncio.timeout(30):
                while True:
                    response = await http.get("/readyz")
                    if response.status_code == 200:
                        break
                    await asyncio.sleep(0.1)  # polling another process: no event to await
            after = await write(http, token, "After the crash")
            assert after["version"] == 1
            assert (await http.get("/healthz")).json()["pid"] == server_pid  # not restarted
            assert acknowledged | {"After the crash"} <= await titles(http, token)
        assert server.stop() == 0, "".join(server.lines[-30:])
        assert not await pgrep(str(data / "db")), "the restarted database outlived the server"
    finally:
        server.stop()
