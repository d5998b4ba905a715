"""The MongoDB client and Beanie initialisation."""

from __future__ import annotations

from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.models import DOCUMENT_MODELS
from app.models.recipe import OBSOLETE_INDEXES, Recipe

Database = AsyncDatabase[dict[str, Any]]


def make_client(uri: str, timeout_seconds: float = 3.0) -> AsyncMongoClient[dict[str, Any]]:
    """A client that fails fast when the database is unreachable (requests answer
    SERVICE_UNAVAILABLE instead of hanging for pymongo's default 30 s)."""
    ms = int(timeout_seconds * 1000)
    # `appName=` in the URI (e.g. one per instance) wins: it names the instance in the
    # database's logs and current operations.
    options: dict[str, Any] = {} if "appname=" in uri.lower() else {"appname": "larder"}
    return AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, **options
    )


async def init_models(client: AsyncMongoClient[dict[str, Any]], db_name: str) -> Database:
    database = client.get_database(db_name)
    await init_beanie(database=database, document_models=DOCUMENT_MODELS)
    await drop_obsolete_indexes(database)
    return database


async def drop_obsolete_indexes(database: Database) -> list[str]:
    """Drop the recipe indexes earlier versions created: every write keeps paying for an
    index until it is dropped. Returns the names dropped."""
    recipes = database.get_collection(Recipe.Settings.name)
    present = {index["name"] async for index in await recipes.list_indexes()}
    dropped = [name for name in OBSOLETE_INDEXES if name in present]
    for name in dropped:
        await recipes.drop_index(name)
    return dropped


async def ping(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True
