"""The MongoDB client and Beanie initialisation."""

from __future__ import annotations

from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.models import DOCUMENT_MODELS

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
    return database


async def ping(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True
