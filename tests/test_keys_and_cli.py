"""Key types, JWKS, startup refusals, and the CLI (`keys generate`, `token`, `serve`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.auth.keys import KeyType, key_id, load_private_pem, public_jwk
from app.auth.tokens import mint_token
from app.auth.verifier import AuthError, ConfigurationError, TokenVerifier
from app.settings import Settings
from tests.support import make_key_pair

ROOT = Path(__file__).resolve().parent.parent


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("key_type", "alg"), [("rsa", "RS256"), ("ec", "ES256"), ("ed25519", "EdDSA")]
)
def test_each_key_type_verifies_its_tokens(tmp_path: Path, key_type: KeyType, alg: str) -> None:
    keys = make_key_pair(tmp_path, key_type)
    verifier = TokenVerifier.from_settings(_settings(jwt_public_key_file=keys.public_path))
    token = keys.token(sub="zoe", roles=["admin"])
    assert (
        json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == alg
    )
    principal = asyncio.run(verifier.verify(token))
    assert principal.id == "zoe" and principal.is_admin


def test_algorithm_not_allowed_for_key_is_refused(tmp_path: Path) -> None:
    keys = make_key_pair(tmp_path, "ec")
    with pytest.raises(ConfigurationError, match="JWT_ALGORITHMS"):
        TokenVerifier.from_settings(
            _settings(jwt_public_key_file=keys.public_path, jwt_algorithms="RS256")
        )


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,HS512", "none", ""])
def test_symmetric_and_none_algorithms_are_refused_at_startup(algorithms: str) -> None:
    with pytest.raises(ValidationError, match="JWT_ALGORITHMS"):
        _settings(jwt_algorithms=algorithms)


def test_private_key_file_is_refused_as_verification_key(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "app", "keys", "generate", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ConfigurationError, match="private key"):
        TokenVerifier.from_settings(_settings(jwt_public_key_file=tmp_path / "private.pem"))


def test_jwks_selects_key_by_kid_and_supports_rotation(tmp_path: Path) -> None:
    old = make_key_pair(tmp_path / "old", "rsa")
    new = make_key_pair(tmp_path / "new", "ec")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps(
            {
                "keys": [
                    public_jwk(old.private.public_key()),
                    public_jwk(new.private.public_key()),
                ]
            }
        )
    )
    verifier = TokenVerifier.from_settings(_settings(jwt_jwks_file=jwks))
    assert asyncio.run(verifier.verify(old.token(sub="a"))).id == "a"
    assert asyncio.run(verifier.verify(new.token(sub="b"))).id == "b"
    stranger = make_key_pair(tmp_path / "x", "rsa")
    with pytest.raises(AuthError) as refused:
        asyncio.run(verifier.verify(stranger.token(sub="c")))
    assert refused.value.reason == "unknown_key"
    # A token that claims a known kid but is signed by another key fails its signature.
    forged = stranger.token(sub="d", kid=key_id(old.private.public_key()))
    with pytest.raises(AuthError) as bad:
        asyncio.run(verifier.verify(forged))
    assert bad.value.reason == "bad_signature"


def test_jwks_with_a_symmetric_key_is_refused(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}))
    with pytest.raises(ConfigurationError, match="symmetric"):
        TokenVerifier.from_settings(_settings(jwt_jwks_file=jwks))


def test_roles_claim_can_point_to_a_namespaced_or_nested_claim(tmp_path: Path) -> None:
    keys = make_key_pair(tmp_path, "rsa")
    for claim, extra in (
        ("https://larder.example/roles", {"https://larder.example/roles": ["admin"]}),
        ("realm_access.roles", {"realm_access": {"roles": ["admin"]}}),
    ):
        verifier = TokenVerifier.from_settings(
            _settings(jwt_public_key_file=keys.public_path, jwt_roles_claim=claim)
        )
        token = mint_token(keys.private, sub="k", extra=extra)
        assert asyncio.run(verifier.verify(token)).roles == ("admin",)


def test_keys_generate_and_token_cli(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = subprocess.run(
        [sys.executable, "-m", "app", "keys", "generate", "--out", str(out), "--type", "ec"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "JWT_PUBLIC_KEY_FILE=" in result.stdout
    assert stat.S_IMODE((out / "private.pem").stat().st_mode) == 0o600
    again = subprocess.run(
        [sys.executable, "-m", "app", "keys", "generate", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1 and "--force" in again.stderr
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "token",
            "--sub",
            "alice",
            "--role",
            "admin",
            "--ttl",
            "5m",
            "--key",
            str(out / "private.pem"),
            "--issuer",
            "https://id.example",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for config in (
        {"jwt_public_key_file": out / "public.pem"},
        {"jwt_jwks_file": out / "jwks.json"},
    ):
        verifier = TokenVerifier.from_settings(_settings(jwt_issuer="https://id.example", **config))
        principal = asyncio.run(verifier.verify(token))
        assert principal.id == "alice" and principal.roles == ("admin",)
    assert load_private_pem(out / "private.pem") is not None


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JWT_", "MONGODB_", "APP_ENV", "DATA_DIR"))
    }
    env.update(extra)
    return env


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_env(APP_ENV="production", MONGODB_URI="mongodb://127.0.0.1:1/"),
    )
    assert result.returncode == 2
    assert "APP_ENV=production needs a verification key" in result.stderr


def test_serve_in_development_creates_a_key_prints_a_token_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(DATA_DIR=str(tmp_path / "data")),
    )
    assert process.stderr is not None
    token = None
    try:
        pending = {"Uvicorn running on", "ready (database"}
        for line in process.stderr:
            found = re.search(r'"Bearer ([\w.-]+)"', line)
            token = token or (found.group(1) if found else None)
            pending -= {marker for marker in pending if marker in line}
            if not pending:
                break
        assert token, "the development banner printed no token"
        assert (tmp_path / "data" / "keys" / "private.pem").exists()
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ me { id } }"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.json() == {"data": {"me": {"id": "dev"}}}
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        process.stderr.close()
    assert code == 0
    # The embedded database kept its data under DATA_DIR and was stopped with the server.
    assert (tmp_path / "data" / "db").is_dir()
    lock = subprocess.run(["pgrep", "-f", str(tmp_path / "data" / "db")], capture_output=True)
    assert lock.returncode == 1, "the embedded database outlived the server"
