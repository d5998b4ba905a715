"""Crashes, not shutdowns: server instances and the database killed with SIGKILL under load.

The clients here do what docs/deployment.md tells a client to do after a failed write: the
acknowledgement may have been lost in flight, so re-read the recipe, and retry with the
version it has now unless the write is already there.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from app.embedded import EmbeddedDatabase
from tests.processes import ServerProcess
from tests.support import GET, UPSERT, Api, KeyPair
from tests.test_live_processes import wait_for_subscriptions
from tests.wsclient import CHANGES, GraphQLWS

WRITERS = 8
RECIPES_PER_WRITER = 2
WRITES_PER_WRITER = 24

PULL = """query PullRecipe($checkpoint: RecipeInputCheckpoint, $limit: Int!) {
  pullRecipe(checkpoint: $checkpoint, limit: $limit) {
    documents { id version } checkpoint { id updatedAt } } }"""


def _env(uri: str, keys: KeyPair, **extra: str) -> dict[str, str]:
    return {
        "MONGODB_URI": uri,
        "MONGODB_DB": "larder",
        "JWT_PUBLIC_KEY_FILE": str(keys.public_path),
        "APP_ENV": "production",
        "MONGODB_TIMEOUT_SECONDS": "1",
        "RATE_LIMIT_MUTATIONS_BURST": "10000",
        **extra,
    }


class Unavailable(Exception):
    """The write may or may not have happened: no acknowledgement came back."""


@dataclass
class Writer:
    """One client: owns a few recipes, writes them in turn, and after any failure re-reads
    before retrying (the only way to know whether an unacknowledged write happened)."""

    name: str
    urls: list[str]  # preferred instance first; the others after a connection error
    keys: KeyPair
    acked: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (version, title)
    retries: int = 0
    active: int = 0  # which of `urls` is in use

    async def _call(self, http: httpx.AsyncClient, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await http.post(
                "/graphql",
                json={"query": UPSERT, "variables": variables},
                headers={"Authorization": f"Bearer {self.keys.token(sub=self.name)}"},
            )
        except httpx.TransportError as exc:
            raise Unavailable(str(exc)) from exc
        if response.status_code != 200:  # 503 SERVICE_UNAVAILABLE, 504 TIMEOUT
            raise Unavailable(response.text)
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise Unavailable(str(body["errors"]))
        result: dict[str, Any] = body["data"]["upsertRecipe"]
        return result

    async def _read(self, http: httpx.AsyncClient, recipe_id: str) -> dict[str, Any] | None:
        response = await http.post(
            "/graphql",
            json={"query": GET, "variables": {"id": recipe_id}},
            headers={"Authorization": f"Bearer {self.keys.token(sub=self.name)}"},
        )
        if response.status_code != 200 or response.json().get("errors"):
            raise Unavailable(response.text)
        recipe: dict[str, Any] | None = response.json()["data"]["recipe"]
        return recipe

    async def write(self, clients: list[httpx.AsyncClient], recipe_id: str, title: str) -> None:
        """Write `title` to the recipe until it is acknowledged or found stored."""
        known = self.acked.get(recipe_id)
        variables: dict[str, Any] = {"input": {"id": recipe_id, "title": title}}
        if known is not None:
            variables["input"]["expectedVersion"] = known[0]
        for attempt in range(200):
            http = clients[self.active]
            try:
                if attempt:
                    current = await self._read(http, recipe_id)
                    if current is not None and current["title"] == title:
                        self.acked[recipe_id] = (current["version"], title)
                        return  # it had been written; only the acknowledgement was lost
                    if current is not None:
                        variables["input"]["expectedVersion"] = current["version"]
                result = await self._call(http, variables)
            except Unavailable:
                self.retries += 1
                self.active = len(clients) - 1  # fail over (a no-op with one instance)
                await asyncio.sleep(0.05 * min(attempt + 1, 10))  # retry backoff, not a wait
                continue
            if result["__typename"] == "Recipe":
                assert result["title"] == title
                self.acked[recipe_id] = (result["version"], title)
                return
            # A VersionConflict: only this writer writes this recipe, so a conflict means a
            # write whose acknowledgement was lost; the re-read on the next turn settles it.
            assert result["__typename"] == "VersionConflict", result
        raise AssertionError(f"{self.name}: {recipe_id} never written")

    async def run(self, writes: int, on_ack: Callable[[], None]) -> None:
        clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in self.urls]
        try:
            ids = [f"{self.name}-r{i}" for i in range(RECIPES_PER_WRITER)]
            for n in range(writes):
                await self.write(clients, ids[n % len(ids)], f"{self.name} write {n}")
                on_ack()
        finally:
            for c in clients:
                await c.aclose()


class AckCounter:
    def __init__(self, threshold: int) -> None:
        self.count = 0
        self.reached = asyncio.Event()
        self.threshold = threshold

    def __call__(self) -> None:
        self.count += 1
        if self.count >= self.threshold:
            self.reached.set()


async def stored(uri: str) -> dict[str, tuple[int, str]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        return {
            d["_id"]: (d["version"], d["title"])
            async for d in client.larder.recipes.find({}, {"version": 1, "title": 1})
        }
    finally:
        await client.close()


def assert_every_acknowledged_write_is_stored(
    writers: list[Writer], server: dict[str, tuple[int, str]]
) -> None:
    acked = {rid: state for w in writers for rid, state in w.acked.items()}
    assert len(acked) == WRITERS * RECIPES_PER_WRITER
    # Exactly the recipes the clients created: a retried create made no duplicate.
    assert server == acked


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(storage=str(tmp_path / "db"), extra_args=["--enable-test-commands"])
    db.start()
    yield db
    db.stop()


async def test_a_server_killed_inside_a_transaction_stalls_nobody(
    database: EmbeddedDatabase, rsa_keys: KeyPair, tmp_path: Path
) -> None:
    """Instance A is SIGKILLed while its transaction holds the clock (its commit is held back
    by a failpoint, so the moment is certain); B's writes are acknowledged again long before
    the orphaned transaction's 60 s lifetime would have ended."""
    a = ServerProcess(_env(database.uri + "&appName=larder-a", rsa_keys), tmp_path).start()
    b = ServerProcess(_env(database.uri + "&appName=larder-b", rsa_keys), tmp_path).start()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database.uri)
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=60) as http_a,
            httpx.AsyncClient(base_url=b.url, timeout=60) as http_b,
        ):
            api_a, api_b = Api(http_a, rsa_keys), Api(http_b, rsa_keys)
            for rid in ("held", "other"):
                await api_b.data(UPSERT, {"input": {"id": rid, "title": "v1"}})
            await client.admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": {"times": 1},
                    "data": {
                        "failCommands": ["commitTransaction"],
                        "blockConnection": True,
                        "blockTimeMS": 30_000,
                        "appName": "larder-a",
                    },
                }
            )
            stuck = asyncio.create_task(
                api_a.post(
                    UPSERT,
                    {"input": {"id": "held", "expectedVersion": 1, "title": "from A"}},
                    token=rsa_keys.token(),
                )
            )
            await _until_the_clock_is_held(client)
            assert a.process is not None
            a.process.send_signal(signal.SIGKILL)
            a.process.wait()
            with pytest.raises(httpx.TransportError):
                await stuck
            killed = time.monotonic()
            # B acknowledges again (its time limit, 15 s, is far below the 60 s lifetime).
            data = await api_b.data(
                UPSERT, {"input": {"id": "other", "expectedVersion": 1, "title": "from B"}}
            )
            recovered = time.monotonic() - killed
            assert data["upsertRecipe"]["version"] == 2
            print(f"first acknowledgement through B {recovered:.2f} s after the kill")
            # A's write never committed: its transaction was aborted, not left to expire.
            held = (await api_b.data(GET, {"id": "held"}))["recipe"]
            assert (held["version"], held["title"]) == (1, "v1")
            metrics = (await http_b.get("/metrics")).text
            reaped = re.search(r"^larder_writer_sessions_reaped_total (\S+)$", metrics, re.M)
            assert reaped is not None and float(reaped.group(1)) >= 1, metrics
    finally:
        with contextlib.suppress(OperationFailure):
            await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await client.close()
        a.stop()
        assert b.stop() == 0


async def _until_the_clock_is_held(client: AsyncMongoClient[dict[str, Any]]) -> None:
    """Across processes there is no event to await: probe until a transaction touching the
    clock document meets a write conflict (someone else's open transaction holds it)."""
    clock = client.larder.sync_clock
    async with asyncio.timeout(30):
        while True:
            async with client.start_session() as session:
                await session.start_transaction()
                try:
                    await clock.update_one(
                        {"_id": "recipes"}, {"$set": {"probe": 1}}, session=session
                    )
                except OperationFailure as exc:
                    if exc.code == 112:  # WriteConflict
                        return
                    raise
                finally:
                    with contextlib.suppress(OperationFailure):
                        await session.abort_transaction()
            await asyncio.sleep(0.02)


async def test_a_server_killed_under_write_load_loses_no_acknowledged_write(
    database: EmbeddedDatabase, rsa_keys: KeyPair, tmp_path: Path
) -> None:
    """Eight clients write through two instances; A is SIGKILLed mid-stream (at whatever
    point of its work it is); its clients move to B, and every acknowledged write is there."""
    a = ServerProcess(_env(database.uri, rsa_keys), tmp_path).start()
    b = ServerProcess(_env(database.uri, rsa_keys), tmp_path).start()
    try:
        writers = [
            Writer(f"u{n}", [a.url, b.url] if n % 2 == 0 else [b.url], rsa_keys)
            for n in range(WRITERS)
        ]
        acks = AckCounter(threshold=WRITERS * WRITES_PER_WRITER // 4)
        running = asyncio.gather(*(w.run(WRITES_PER_WRITER, acks) for w in writers))
        await acks.reached.wait()
        assert a.process is not None
        a.process.send_signal(signal.SIGKILL)
        a.process.wait()
        killed_at = acks.count
        await running
        assert acks.count == WRITERS * WRITES_PER_WRITER
        assert killed_at < acks.count, "B acknowledged nothing after the kill"
        assert sum(w.retries for w in writers[::2]) > 0, "no client saw the crash"
        assert_every_acknowledged_write_is_stored(writers, await stored(database.uri))
    finally:
        a.stop()
        assert b.stop() == 0


async def test_the_database_killed_under_write_load_keeps_every_acknowledged_write(
    rsa_keys: KeyPair, tmp_path: Path
) -> None:
    """SIGKILL of the embedded daemon (which fsyncs every commit) under load, then a restart on
    the same storage: every acknowledged write is there, the server answers again without a
    restart, a subscriber gets the later writes (or is told to refetch), and a checkpoint
    puller running across the crash ends with exactly the server's id -> version map."""
    database = EmbeddedDatabase(storage=str(tmp_path / "db")).start()
    server = ServerProcess(_env(database.uri, rsa_keys), tmp_path).start()
    try:
        ws = await GraphQLWS.connect(
            server.url,
            payload={"authorization": f"Bearer {rsa_keys.token(sub='admin', roles=['admin'])}"},
        )
        await ws.subscribe(CHANGES)
        await wait_for_subscriptions(server.url, 1)

        writers = [Writer(f"u{n}", [server.url], rsa_keys) for n in range(WRITERS)]
        acks = AckCounter(threshold=WRITERS * WRITES_PER_WRITER // 3)
        done = asyncio.Event()
        pulled: dict[str, int] = {}
        admin = rsa_keys.token(sub="admin", roles=["admin"])
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            pulling = asyncio.create_task(pull_until_drained(http, admin, done, pulled))
            running = asyncio.gather(*(w.run(WRITES_PER_WRITER, acks) for w in writers))
            await acks.reached.wait()
            assert database.process is not None
            database.process.send_signal(signal.SIGKILL)
            database.process.wait()
            acked_before_crash = {rid: s for w in writers for rid, s in w.acked.items()}
            port = database.port
            database.stop()
            database = EmbeddedDatabase(storage=str(tmp_path / "db"), port=port).start()
            survived = await stored(database.uri)
            for rid, (version, _) in acked_before_crash.items():
                assert survived[rid][0] >= version, f"{rid}: acknowledged v{version} lost"
            await running
            done.set()
            await pulling

        server_state = await stored(database.uri)
        assert_every_acknowledged_write_is_stored(writers, server_state)
        final = {rid: version for rid, (version, _) in server_state.items()}
        assert pulled == final
        seen, told_to_refetch = await final_versions_or_refetch(ws, final)
        assert seen == final or told_to_refetch
        await ws.close()
    finally:
        code = server.stop()
        database.stop()
    assert code == 0, "".join(server.lines[-30:])


async def pull_until_drained(
    http: httpx.AsyncClient, token: str, done: asyncio.Event, pulled: dict[str, int]
) -> None:
    """A checkpoint puller (as RxDB runs one): loops from its checkpoint through errors, and
    once `done` is set, until a pull returns nothing new."""
    checkpoint = None
    while True:
        finished = done.is_set()
        response = await http.post(
            "/graphql",
            json={"query": PULL, "variables": {"checkpoint": checkpoint, "limit": 5}},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            await asyncio.sleep(0.05)  # retry backoff while the database is down
            continue
        bulk = body["data"]["pullRecipe"]
        for d in bulk["documents"]:
            assert d["version"] >= pulled.get(d["id"], 0), "a version went backwards"
            pulled[d["id"]] = d["version"]
        checkpoint = bulk["checkpoint"]
        if finished and not bulk["documents"]:
            return


async def final_versions_or_refetch(
    ws: GraphQLWS, final: dict[str, int]
) -> tuple[dict[str, int], bool]:
    """Read the subscription until every recipe's final version arrived, or the server told
    the subscriber to refetch (an error ends the subscription)."""
    seen: dict[str, int] = {}
    while seen != final:
        message = await ws.receive(timeout=60)
        if message["type"] != "next" or "errors" in message["payload"]:
            return seen, True
        recipe = message["payload"]["data"]["recipeChanged"]["recipe"]
        seen[recipe["id"]] = max(seen.get(recipe["id"], 0), recipe["version"])
    return seen, False
