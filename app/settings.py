"""Configuration, read once from the environment (and `.env`) and passed in explicitly."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.http.websocket_origin import normalize_allowed_origins

ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; a container's CPU quota is not seen)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# The least memory per connection and CPU per frame with Larder's app (docs/performance.md).
DEFAULT_WS_PROTOCOL: Literal["websockets-sansio"] = "websockets-sansio"


class Settings(BaseSettings):
    """Every setting Larder reads. See the configuration table in README.md."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    # Server processes on the one port (`serve --workers` overrides it); "auto": one per CPU.
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1

    mongodb_uri: str | None = None
    mongodb_db: str = "larder"
    data_dir: Path = Path("./data")

    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    # Comma-separated in the environment: JWT_ALGORITHMS=RS256,ES256
    jwt_algorithms: str = "RS256,ES256,EdDSA"
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_roles_claim: str = "roles"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)

    # WebSocket subscriptions
    ws_keepalive_seconds: float = Field(default=15.0, gt=0, le=300)
    ws_connection_init_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    ws_max_subscriptions_per_connection: int = Field(default=50, ge=1, le=10_000)
    ws_max_connections_per_user: int = Field(default=20, ge=1, le=100_000)
    ws_subscriber_queue: int = Field(default=256, ge=1, le=100_000)
    # Execute recipeChanged/streamRecipe once per group of alike subscribers (see
    # app/schema/fanout.py); off runs Strawberry's per-subscriber execution.
    ws_grouped_fanout: bool = True
    # permessage-deflate: browsers always offer it; accepting it costs ~40 KB of zlib state
    # per connection (measured: 39 -> 81 KB per idle subscription) and CPU per frame.
    ws_per_message_deflate: bool = False
    # uvicorn's WebSocket protocol implementation; compared in docs/performance.md
    # (`bench/ws_stack.py`). wsproto needs `pip install wsproto`.
    ws_protocol: Literal["websockets-sansio", "websockets", "wsproto"] = DEFAULT_WS_PROTOCOL

    # Limits on what one request may ask for
    max_query_depth: int = Field(default=12, ge=2, le=100)
    max_query_tokens: int = Field(default=2_000, ge=100, le=1_000_000)
    max_query_aliases: int = Field(default=30, ge=1, le=10_000)
    max_body_bytes: int = Field(default=1_000_000, ge=1_024, le=100_000_000)
    operation_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    max_push_rows: int = Field(default=100, ge=1, le=10_000)

    # Rate limits per user and process (token buckets): sustained rate and burst
    rate_limit_mutations_per_second: float = Field(default=20.0, gt=0)
    rate_limit_mutations_burst: int = Field(default=100, ge=1)
    rate_limit_ws_connects_per_second: float = Field(default=1.0, gt=0)
    rate_limit_ws_connects_burst: int = Field(default=20, ge=1)

    # Database
    mongodb_timeout_seconds: float = Field(default=3.0, gt=0, le=120)

    # JWKS over HTTP (JWT_JWKS_URL): cache lifetime when the server sends no max-age, and the
    # least time between refetches triggered by unknown key ids
    jwt_jwks_url: str | None = None
    jwt_jwks_default_ttl_seconds: float = Field(default=300.0, ge=1)
    jwt_jwks_min_refetch_seconds: float = Field(default=30.0, ge=0)

    # Offline sync
    tombstone_retention: timedelta = timedelta(days=30)
    tombstone_purge_interval: timedelta = timedelta(hours=1)

    cors_origins: str = ""
    log_level: str = "INFO"
    # Unset: text in development, json in production (see `log_style`).
    log_format: Literal["json", "text"] | None = None
    # Unset: on in development, off in production (see `introspection_enabled`).
    graphql_introspection: bool | None = None

    @field_validator("jwt_algorithms")
    @classmethod
    def _only_asymmetric(cls, value: str) -> str:
        algorithms = [a.strip() for a in value.split(",") if a.strip()]
        if not algorithms:
            raise ValueError("JWT_ALGORITHMS must name at least one algorithm")
        refused = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"JWT_ALGORITHMS contains {', '.join(refused)}: only asymmetric algorithms "
                f"are accepted ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); "
                "HS* and 'none' are refused because Larder must never hold a signing secret"
            )
        return ",".join(algorithms)

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        origins = [o.strip() for o in value.split(",") if o.strip()]
        try:
            normalize_allowed_origins(origins)
        except ValueError as exc:
            raise ValueError(
                f"{exc} CORS_ORIGINS lists browser origins, comma-separated, "
                "e.g. https://app.example.com,http://localhost:5173"
            ) from None
        return ",".join(origins)

    @field_validator("tombstone_retention", "tombstone_purge_interval")
    @classmethod
    def _positive_duration(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        least = timedelta(0) if info.field_name == "tombstone_retention" else timedelta(seconds=1)
        if value < least:
            raise ValueError(f"must be at least {least.total_seconds():g} s")
        return value

    @property
    def algorithms(self) -> list[str]:
        return self.jwt_algorithms.split(",")

    @property
    def leeway(self) -> timedelta:
        return timedelta(seconds=self.jwt_leeway_seconds)

    @property
    def cors_origin_list(self) -> list[str]:
        """Browser origins allowed to call the API: over HTTP (CORS) and over WebSocket
        (the handshake's Origin header; browsers apply no CORS to WebSockets)."""
        return [o for o in self.cors_origins.split(",") if o]

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def log_style(self) -> Literal["json", "text"]:
        """LOG_FORMAT, else readable lines in development and JSON lines in production."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "text"

    @property
    def introspection_enabled(self) -> bool:
        """GRAPHQL_INTROSPECTION, else on in development only (production clients generate
        code from the exported schema.graphql)."""
        if self.graphql_introspection is not None:
            return self.graphql_introspection
        return not self.is_production

    @property
    def worker_count(self) -> int:
        """WORKERS as a number: "auto" is the CPUs this process may run on."""
        return usable_cpus() if self.workers == "auto" else self.workers

    @property
    def dev_key_dir(self) -> Path:
        return self.data_dir / "keys"
