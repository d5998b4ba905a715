"""Key pairs: generation for development and the CLI, loading of public keys for verification."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

KeyType = Literal["rsa", "ec", "ed25519"]
PRIVATE_KEY_NAME = "private.pem"
PUBLIC_KEY_NAME = "public.pem"

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class KeyFileError(ValueError):
    """A key file that cannot be used (wrong format, private key, unsupported type)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the JWT algorithms it can verify."""

    key: PublicKeyTypes
    algorithms: tuple[str, ...]
    kid: str | None = None


def algorithms_for(key: PublicKeyTypes) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        if alg is None:
            raise KeyFileError(f"unsupported EC curve {key.curve.name}; use P-256, P-384 or P-521")
        return (alg,)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    raise KeyFileError(f"unsupported public key type {type(key).__name__}")


def load_public_pem(path: Path) -> VerificationKey:
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        raise KeyFileError(
            f"{path} holds a private key; Larder only needs (and should only be given) "
            "the public key"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM public key: {exc}") from exc
    return VerificationKey(key=key, algorithms=algorithms_for(key))


def load_jwks(path: Path) -> list[VerificationKey]:
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a usable JWKS document: {exc}") from exc
    return jwks_keys(document, str(path))


def jwks_keys(document: object, path: str) -> list[VerificationKey]:
    """The public keys of a JWKS document; raises KeyFileError naming `path` (file or URL)."""
    try:
        jwk_set = jwt.PyJWKSet.from_dict(document)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
        raise KeyFileError(f"{path} is not a usable JWKS document: {exc}") from exc
    keys: list[VerificationKey] = []
    for jwk in jwk_set.keys:
        if jwk.key_type == "oct":
            raise KeyFileError(
                f"{path} contains a symmetric (oct) key; only public keys are allowed"
            )
        public = jwk.key
        if hasattr(public, "public_key") and not isinstance(
            public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
        ):
            raise KeyFileError(
                f"{path} contains a private key (kid={jwk.key_id}); publish public keys only"
            )
        algorithms = algorithms_for(public)
        declared = jwk._jwk_data.get("alg")
        if declared:
            if declared not in algorithms:
                raise KeyFileError(
                    f"{path}: key {jwk.key_id} declares alg {declared} that does not fit it"
                )
            algorithms = (declared,)
        keys.append(VerificationKey(key=public, algorithms=algorithms, kid=jwk.key_id))
    if not keys:
        raise KeyFileError(f"{path} contains no keys")
    return keys


def generate_private_key(key_type: KeyType = "rsa") -> PrivateKeyTypes:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def write_key_pair(directory: Path, key_type: KeyType = "rsa") -> tuple[Path, Path]:
    """Write `private.pem` (mode 0600) and `public.pem` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    private = generate_private_key(key_type)
    private_path = directory / PRIVATE_KEY_NAME
    public_path = directory / PUBLIC_KEY_NAME
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_pem(path: Path) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def algorithm_for_private(key: PrivateKeyTypes) -> str:
    return algorithms_for(key.public_key())[0]


def key_id(public: PublicKeyTypes) -> str:
    """A stable key id: RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    import base64
    import hashlib

    jwk = _public_jwk(public)
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {k: jwk[k] for k in required[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def _public_jwk(public: PublicKeyTypes) -> dict[str, str]:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    if isinstance(public, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public, as_dict=True)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public, as_dict=True)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return OKPAlgorithm.to_jwk(public, as_dict=True)
    raise KeyFileError(f"unsupported public key type {type(public).__name__}")


def public_jwk(public: PublicKeyTypes) -> dict[str, str]:
    """The public key as a JWK with `kid`, `alg` and `use`."""
    jwk = dict(_public_jwk(public))
    jwk.update({"kid": key_id(public), "alg": algorithms_for(public)[0], "use": "sig"})
    return jwk


def write_jwks(public_pem: Path, out: Path) -> Path:
    public = load_public_pem(public_pem).key
    out.write_text(json.dumps({"keys": [public_jwk(public)]}, indent=2) + "\n")
    return out
