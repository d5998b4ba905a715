"""`python -m app demo`: load about fifty demo recipes into the configured database.

Owners `dev`, `alice` and `bob`; some shared with collaborators, some PUBLIC. Fixed ids, so
running it again changes nothing (recipes edited since are put back as a new version).
"""

from __future__ import annotations

import asyncio
import sys

from app.db import init_models, make_client, ping
from app.demo.data import RECIPES, USERS
from app.demo.load import DemoReport, load_demo
from app.embedded import EmbeddedDatabase, EmbeddedDatabaseError
from app.services.lease import WriterLease
from app.services.recipes import RecipeService
from app.services.writes import StampedWriter
from app.settings import Settings

__all__ = ["DemoReport", "load_demo", "run_demo"]


async def _load(uri: str, settings: Settings) -> DemoReport:
    client = make_client(uri, settings.mongodb_timeout_seconds)
    try:
        database = await init_models(client, settings.mongodb_db)
        recipes = database.get_collection("recipes")
        lease = WriterLease(database.get_collection("sync_writers"))
        writer = StampedWriter(recipes, database.get_collection("sync_clock"), lease)
        renewing = asyncio.create_task(lease.run())
        try:
            return await load_demo(RecipeService(recipes, writer))
        finally:
            renewing.cancel()
            await writer.close_session()
            await lease.release()
    finally:
        await client.close()


async def _answers(uri: str | None) -> bool:
    if uri is None:
        return False
    client = make_client(uri, timeout_seconds=1.0)
    try:
        return await ping(client)
    finally:
        await client.close()


def run_demo(settings: Settings) -> int:
    """Into MONGODB_URI, else the embedded database in DATA_DIR: the one a running `serve`
    started (its subscribers then see the recipes arrive), or started here and stopped."""
    database: EmbeddedDatabase | None = None
    uri = settings.mongodb_uri
    if not uri:
        running = EmbeddedDatabase.published_uri(settings.data_dir)
        uri = running if asyncio.run(_answers(running)) else None
    if not uri:
        database = EmbeddedDatabase.in_data_dir(settings.data_dir)
        try:
            uri = database.start().uri
        except EmbeddedDatabaseError as exc:
            print(
                f"cannot open the embedded database in {settings.data_dir}: {exc}",
                file=sys.stderr,
            )
            return 1
    try:
        report = asyncio.run(_load(uri, settings))
    finally:
        if database is not None:
            database.stop()
    print(
        f"demo data in database {settings.mongodb_db!r}: {len(RECIPES)} recipes owned by "
        f"{', '.join(USERS)} ({report.created} created, {report.restored} restored, "
        f"{report.unchanged} already there)"
    )
    for recipe_id in report.skipped:
        print(f"  skipped {recipe_id}: deleted, or the id belongs to another user's recipe")
    print("  tokens for them: python -m app token --sub alice")
    return 0
