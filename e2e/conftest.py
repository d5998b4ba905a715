"""Browser end-to-end fixtures: the built web app (examples/web/dist) on its own origin, a real
Larder server on the embedded database, a TCP relay between them that a test can cut, and
Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    async_playwright,
    expect,
)
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from app.embedded import EmbeddedDatabase
from app.main import create_app
from app.settings import Settings
from tests.support import Api, KeyPair, LiveServer, make_key_pair

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "examples" / "web" / "dist"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# `LARDER_E2E_SCREENSHOTS=examples/web/docs make e2e` refreshes the README's screenshots.
SCREENSHOTS = os.environ.get("LARDER_E2E_SCREENSHOTS")

expect.set_options(timeout=15_000)


class TcpRelay:
    """127.0.0.1:port -> target, byte for byte. stop() closes the listener and every open
    connection (a real network cut: WebSockets die, requests fail); start() listens again on
    the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


def static_site() -> LiveServer:
    if not (DIST / "index.html").exists():
        raise RuntimeError(f"{DIST} is missing: build the app (make e2e does)")
    return LiveServer(Starlette(routes=[Mount("/", StaticFiles(directory=DIST, html=True))]))


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    with EmbeddedDatabase(storage=":memory:") as database:
        yield database.uri


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key_pair(tmp_path_factory.mktemp("keys"), "rsa")


@pytest.fixture
async def web() -> AsyncIterator[LiveServer]:
    """The built app on its own origin (http://127.0.0.1:<port>), listed in CORS_ORIGINS."""
    site = static_site()
    await site.start()
    yield site
    await site.stop()


@pytest.fixture
async def larder(
    mongodb_uri: str, keys: KeyPair, web: LiveServer, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    settings = Settings(
        _env_file=None,
        mongodb_uri=mongodb_uri,
        mongodb_db=f"e2e_{uuid.uuid4().hex[:12]}",
        data_dir=tmp_path / "data",
        jwt_public_key_file=keys.public_path,
        jwt_leeway_seconds=0,  # a token is refused the second it expires
        cors_origins=web.url,
    )
    server = LiveServer(create_app(settings))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def relay(larder: LiveServer) -> AsyncIterator[TcpRelay]:
    """The page's only way to the API: tests stop and restart it to go offline and back."""
    relay = TcpRelay(larder.port)
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
async def api(larder: LiveServer, keys: KeyPair) -> AsyncIterator[Api]:
    """Python's own view of the server (directly, not through the relay)."""
    async with httpx.AsyncClient(base_url=larder.url, timeout=30) as client:
        yield Api(client, keys)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        await browser.close()


class App:
    """One person's browser (its own context: own IndexedDB and localStorage)."""

    def __init__(self, context: BrowserContext, page: Page, site: str) -> None:
        self.context = context
        self.page = page
        self.site = site
        self.errors: list[str] = []  # uncaught exceptions in the page
        self.frames: list[str] = []  # WebSocket messages the page received
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        self.frames.append(payload if isinstance(payload, str) else payload.decode())

    @classmethod
    async def open(cls, browser: Browser, site: str) -> App:
        context = await browser.new_context(viewport={"width": 900, "height": 640})
        page = await context.new_page()
        app = cls(context, page, site)
        await page.goto(site)
        return app

    def by(self, test_id: str) -> Locator:
        return self.page.get_by_test_id(test_id)

    async def sign_in(self, api_url: str, token: str, *, expect_ok: bool = True) -> None:
        await self.by("api-url").fill(f"{api_url}/graphql")
        await self.by("token").fill(token)
        await self.by("sign-in-submit").click()
        if expect_ok:
            await expect(self.by("sync-status")).to_have_text("synced")

    def item(self, title: str) -> Locator:
        return self.by("recipe-item").filter(has_text=title)

    async def open_recipe(self, title: str) -> None:
        await self.item(title).get_by_role("link").click()
        await expect(self.by("recipe-title")).to_have_text(title)

    async def edit(self, **fields: str) -> None:
        """From a recipe's view (or the list's "New recipe"), fill the editor and save."""
        for name, value in fields.items():
            field = self.by(f"field-{name}")
            await (field.select_option(value) if name == "visibility" else field.fill(value))
        await self.by("save").click()

    async def screenshot(self, name: str) -> None:
        if SCREENSHOTS:
            await self.page.screenshot(path=str(ROOT / SCREENSHOTS / f"{name}.png"))

    async def close(self) -> None:
        """Close the browser context; the page must not have thrown meanwhile."""
        await self.context.close()
        assert not self.errors, self.errors
