"""`serve --workers 2`: real worker processes behind one port, a real database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx

from app.auth.keys import load_private_pem
from tests.processes import ServerProcess
from tests.support import UPSERT, KeyPair
from tests.wsclient import CHANGES, GraphQLWS

WORKERS = 2


async def probe(url: str) -> tuple[int, int]:
    """(pid, subscriptions) of the worker that accepts a new connection: /healthz and
    /metrics over one kept-alive connection, so that both answers come from one worker."""
    async with httpx.AsyncClient(base_url=url) as http:
        while True:
            pid = (await http.get("/healthz")).json()["pid"]
            metrics = (await http.get("/metrics")).text
            if (await http.get("/healthz")).json()["pid"] == pid:
                found = re.search(r"^larder_subscriptions (\S+)$", metrics, re.M)
                assert found is not None, metrics
                return pid, int(float(found.group(1)))


async def subscriptions_per_worker(url: str, total: int) -> dict[int, int]:
    """Across processes there is no event to await: probe new connections until every worker
    has answered and their subscription gauges add up to `total`."""
    seen: dict[int, int] = {}
    async with asyncio.timeout(30):
        while len(seen) < WORKERS or sum(seen.values()) != total:
            pid, subscriptions = await probe(url)
            seen[pid] = subscriptions
    return seen


async def write(http: httpx.AsyncClient, token: str, title: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": UPSERT, "variables": {"input": {"title": title}}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]["upsertRecipe"]
    assert result["__typename"] == "Recipe", result
    return result


async def pgrep(pattern: str) -> list[str]:
    found = await asyncio.create_subprocess_exec(
        "pgrep", "-f", pattern, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await found.communicate()
    return out.decode().split()


def _alive(pid: int) -> bool:
    """Not gone and not a zombie (nobody may reap an orphan in a container)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def test_workers_share_one_port_one_database_and_stop_together(tmp_path: Path) -> None:
    """Development mode: one embedded database and one token for both workers; a write
    through any worker reaches the subscribers of every worker; SIGTERM closes every
    worker's WebSockets with 1001, then stops the database, and `serve` exits 0."""
    data = tmp_path / "data"
    server = ServerProcess({"DATA_DIR": str(data)}, tmp_path, workers=WORKERS).start()
    assert server.process is not None
    sockets: list[GraphQLWS] = []
    try:
        assert sum("Bearer " in line for line in server.lines) == 1, "one banner, one token"
        assert len(await pgrep(str(data / "db"))) == 1, "one embedded database"
        keys = data / "keys"
        token = KeyPair(load_private_pem(keys / "private.pem"), keys / "public.pem").token()
        # New connections land on either worker: subscribe until each worker holds one.
        per_worker = await subscriptions_per_worker(server.url, 0)
        while 0 in per_worker.values():
            assert len(sockets) < 20, f"the workers never both accepted: {per_worker}"
            ws = await GraphQLWS.connect(server.url, payload={"authorization": f"Bearer {token}"})
            sockets.append(ws)
            await ws.subscribe(CHANGES)
            per_worker = await subscriptions_per_worker(server.url, len(sockets))

        async with httpx.AsyncClient(base_url=server.url) as http:
            await write(http, token, "Through one worker")
        for ws in sockets:  # on both workers, so also on the one that did not write
            event = (await ws.next_data())["recipeChanged"]
            assert (event["kind"], event["recipe"]["title"]) == ("CREATED", "Through one worker")

        server.process.send_signal(signal.SIGTERM)
        for ws in sockets:
            code, reason = await ws.close_code(timeout=30)
            assert code == 1001 and "shutting down" in reason
        assert server.stop() == 0, "".join(server.lines[-30:])
        assert not any(_alive(pid) for pid in per_worker)
        assert not await pgrep(str(data / "db")), "the embedded database outlived the server"
    finally:
        server.stop()


async def test_a_killed_worker_is_replaced_while_the_other_keeps_writing(
    mongodb_uri: str, db_name: str, rsa_keys: KeyPair, tmp_path: Path, mongo: Any
) -> None:
    """kill -9 of one worker: the other acknowledges writes meanwhile, a replacement starts
    and takes writes too. Then kill -9 of `serve` itself: no worker outlives it."""
    env = {
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DB": db_name,
        "JWT_PUBLIC_KEY_FILE": str(rsa_keys.public_path),
        "APP_ENV": "production",
    }
    server = ServerProcess(env, tmp_path, workers=WORKERS).start()
    assert server.process is not None
    token = rsa_keys.token()
    try:
        first = set(await subscriptions_per_worker(server.url, 0))
        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGKILL)
        for n in range(5):  # each on a new connection: only the survivor accepts now
            async with httpx.AsyncClient(base_url=server.url) as http:
                await write(http, token, f"While one worker is down {n}")

        server.wait_for_line(f"worker {victim} was killed by signal 9")
        server.wait_for_line("ready (database", count=WORKERS + 1)
        async with asyncio.timeout(30):
            while True:  # until a connection lands on the replacement, then write over it
                async with httpx.AsyncClient(base_url=server.url) as http:
                    pid = (await http.get("/healthz")).json()["pid"]
                    if pid not in first:
                        await write(http, token, "Through the replacement")
                        assert (await http.get("/healthz")).json()["pid"] == pid
                        break
        assert not _alive(victim) and _alive(survivor)

        server.process.kill()
        async with asyncio.timeout(30):
            while True:  # across processes there is no event to await: poll, bounded
                if not _alive(survivor) and not _alive(pid):
                    break
                await asyncio.sleep(0.05)
    finally:
        server.stop()
