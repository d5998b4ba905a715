"""LOG_FORMAT: one readable line per operation in development, JSON lines in production;
never a token or a request body in either (real `python -m app serve` processes)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.logs import TextFormatter
from app.settings import Settings
from tests.processes import ServerProcess
from tests.support import UPSERT, KeyPair

SECRET_TITLE = "Quince soufflé 7f3a9"
MUTATION = UPSERT.replace("mutation Upsert(", "mutation CreateSecretDish(")


def _is_json_log(line: str) -> bool:
    try:
        return "msg" in json.loads(line)
    except ValueError:
        return False


def _post(server: ServerProcess, token: str) -> None:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": MUTATION, "variables": {"input": {"title": SECRET_TITLE}}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.json()["data"]["upsertRecipe"]["__typename"] == "Recipe"


def test_development_prints_a_readable_line_per_operation(serve: Any) -> None:
    server = serve(LOG_FORMAT="")  # unset: development means text
    banner = server.wait_for_line('"Authorization": "Bearer ')
    token = re.search(r"Bearer ([\w.-]+)", banner).group(1)  # type: ignore[union-attr]
    _post(server, token)
    line = server.wait_for_line("CreateSecretDish")
    assert not _is_json_log(line)
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3}\s+mutation\s+CreateSecretDish\s+dev\s+OK\s+[\d.]+ ms\n", line
    ), line
    ready = server.wait_for_line("ready (database")
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3}\s+INFO\s+larder \S+ ready \(database", ready)
    text = "".join(server.lines)
    assert "color_message" not in text and "\033[" not in text  # stderr is not a terminal
    assert not any(_is_json_log(line) for line in server.lines)
    assert SECRET_TITLE not in text
    assert [line for line in server.lines if token in line] == [banner]  # only the banner


@pytest.mark.parametrize("env", [{"APP_ENV": "production"}, {"LOG_FORMAT": "JSON"}])
def test_production_or_log_format_json_prints_json_lines(
    serve: Any, rsa_keys: KeyPair, env: dict[str, str]
) -> None:
    server = serve(JWT_PUBLIC_KEY_FILE=str(rsa_keys.public_path), **env)
    token = rsa_keys.token(sub="alice")
    _post(server, token)
    server.wait_for_line("CreateSecretDish")
    entries = [json.loads(line) for line in server.lines if line.strip()]
    (access,) = [e for e in entries if e.get("operation") == "CreateSecretDish"]
    assert access["user"] == "alice" and access["outcome"] == "OK"
    assert access["type"] == "mutation" and access["duration_ms"] >= 0
    assert any(e["msg"].startswith("Uvicorn running on") for e in entries)
    assert not any("color_message" in e for e in entries)
    text = "".join(server.lines)
    assert token not in text and SECRET_TITLE not in text


def test_text_lines_are_coloured_only_for_a_terminal() -> None:
    record = logging.makeLogRecord(
        {
            "name": "larder.access",
            "msg": "graphql operation",
            "operation": "List",
            "type": "query",
            "user": "dev",
            "outcome": "UNAUTHENTICATED",
            "duration_ms": 2.5,
        }
    )
    assert "\033[31mUNAUTHENTICATED" in TextFormatter(colour=True).format(record)
    plain = TextFormatter(colour=False).format(record)
    assert "\033[" not in plain and "UNAUTHENTICATED" in plain


def test_log_format_follows_app_env_unless_set() -> None:
    assert Settings(_env_file=None).log_style == "text"
    assert Settings(_env_file=None, app_env="production").log_style == "json"
    assert Settings(_env_file=None, app_env="production", log_format=" Text ").log_style == "text"
    with pytest.raises(ValidationError, match="log_format"):
        Settings(_env_file=None, log_format="xml")
