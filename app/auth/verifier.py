"""Verifies bearer tokens against public keys only (PEM or JWKS file)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import jwt

from app.auth.jwks import RemoteJwks
from app.auth.keys import KeyFileError, VerificationKey, load_jwks, load_public_pem
from app.auth.principal import Principal
from app.settings import Settings

MAX_TOKEN_LENGTH = 16_384
VERIFIED_CACHE_SIZE = 10_000


class ConfigurationError(RuntimeError):
    """The auth configuration cannot work; the server refuses to start."""


class AuthError(Exception):
    """A request's credentials were missing or invalid. `reason` is a short, stable label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def bearer_token(header_value: str | None) -> str:
    """Extract the token from an `Authorization: Bearer <jwt>` value."""
    if not header_value:
        raise AuthError("missing", "Missing bearer token: send 'Authorization: Bearer <jwt>'")
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("malformed", "Authorization must have the form 'Bearer <jwt>'")
    return token


class KeySource(Protocol):
    async def candidates(self, alg: str, kid: object) -> list[VerificationKey]: ...


class StaticKeys:
    """Keys from a PEM or JWKS file, loaded once at startup."""

    def __init__(self, keys: list[VerificationKey], algorithms: list[str]) -> None:
        self.keys = [k for k in keys if set(k.algorithms) & set(algorithms)]
        if not self.keys:
            raise ConfigurationError(
                f"none of the configured keys can verify the allowed algorithms "
                f"({', '.join(algorithms)}); check JWT_ALGORITHMS against the key type"
            )

    async def candidates(self, alg: str, kid: object) -> list[VerificationKey]:
        fitting = [k for k in self.keys if alg in k.algorithms]
        if kid is not None:
            fitting = [k for k in fitting if k.kid is None or k.kid == kid]
        return fitting


class TokenVerifier:
    """Checks signature (asymmetric algorithms only), `exp`/`iat`/`sub`, issuer and audience.

    A token whose signature was verified is remembered (bounded LRU) so repeat requests skip
    the signature check; its expiry is still enforced on every use.
    """

    def __init__(
        self,
        keys: list[VerificationKey] | KeySource,
        *,
        algorithms: list[str],
        issuer: str | None = None,
        audience: str | None = None,
        leeway_seconds: int = 30,
        roles_claim: str = "roles",
    ) -> None:
        self.keys: KeySource = StaticKeys(keys, algorithms) if isinstance(keys, list) else keys
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        self._algorithms = frozenset(algorithms)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._roles_claim = roles_claim

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        pem = settings.jwt_public_key_file
        sources = [pem, settings.jwt_jwks_file, settings.jwt_jwks_url]
        if sum(1 for source in sources if source) > 1:
            raise ConfigurationError(
                "set only one of JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE and JWT_JWKS_URL"
            )
        keys: list[VerificationKey] | KeySource
        try:
            if settings.jwt_jwks_url:
                if not settings.jwt_jwks_url.startswith(("https://", "http://")):
                    raise ConfigurationError("JWT_JWKS_URL must be an http(s) URL")
                keys = RemoteJwks(
                    settings.jwt_jwks_url,
                    default_ttl=settings.jwt_jwks_default_ttl_seconds,
                    min_refetch=settings.jwt_jwks_min_refetch_seconds,
                )
            elif settings.jwt_jwks_file:
                keys = load_jwks(settings.jwt_jwks_file)
            elif pem:
                keys = [load_public_pem(pem)]
            else:
                raise ConfigurationError(
                    "no verification key configured: set JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE "
                    "or JWT_JWKS_URL"
                )
        except (OSError, KeyFileError) as exc:
            raise ConfigurationError(str(exc)) from exc
        return cls(
            keys,
            algorithms=settings.algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
            roles_claim=settings.jwt_roles_claim,
        )

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("malformed", "Token is too large")
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at is not None and time.time() > known.expires_at + self._leeway:
                raise AuthError("expired", "Token has expired")
            self._verified.move_to_end(token)
            return known
        principal = await self._verify(token)
        self._verified[token] = principal
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise AuthError("malformed", "Token is not a well-formed JWT") from exc
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise AuthError("algorithm", f"Token algorithm {alg!r} is not accepted")
        candidates = await self.keys.candidates(alg, header.get("kid"))
        if not candidates:
            raise AuthError("unknown_key", "Token was not signed by a known key")
        last_error: AuthError | None = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key=key.key,  # type: ignore[arg-type]
                    algorithms=[alg],
                    issuer=self._issuer,
                    audience=self._audience,
                    leeway=self._leeway,
                    options={
                        "require": ["exp", "iat", "sub"],
                        "verify_aud": self._audience is not None,
                    },
                )
            except jwt.InvalidSignatureError:
                last_error = AuthError("bad_signature", "Token signature is invalid")
                continue
            except jwt.ExpiredSignatureError as exc:
                raise AuthError("expired", "Token has expired") from exc
            except jwt.InvalidIssuerError as exc:
                raise AuthError("issuer", "Token issuer is not accepted") from exc
            except jwt.InvalidAudienceError as exc:
                raise AuthError("audience", "Token audience is not accepted") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise AuthError("claims", f"Token is missing the '{exc.claim}' claim") from exc
            except jwt.ImmatureSignatureError as exc:
                raise AuthError("claims", "Token is not valid yet (iat/nbf in the future)") from exc
            except jwt.InvalidTokenError as exc:
                raise AuthError("malformed", f"Token is invalid: {exc}") from exc
            return self._principal(claims)
        raise last_error or AuthError("unknown_key", "Token was not signed by a known key")

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 256:
            raise AuthError("claims", "Token 'sub' must be a non-empty string")
        exp = claims.get("exp")
        return Principal(
            id=sub,
            roles=_roles(_claim(claims, self._roles_claim)),
            expires_at=float(exp) if isinstance(exp, int | float) else None,
        )


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by its literal name (namespaced URLs included), else by a dotted path."""
    if name in claims:
        return claims[name]
    node: Any = claims
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _roles(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(r for r in value.replace(",", " ").split() if r)
    if isinstance(value, list | tuple):
        return tuple(r for r in value if isinstance(r, str) and r)
    return ()
