"""`python -m app serve | demo | keys generate | token | export-schema`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from app.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Larder sync backend")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (embedded database by default)")
    serve.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="server processes on the one port, or 'auto' for one per CPU (default: WORKERS or 1)",
    )

    commands.add_parser("demo", help="load about 50 demo recipes (idempotent)")

    keys = commands.add_parser("keys", help="key pair management")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_commands.add_parser("generate", help="write private.pem, public.pem, jwks.json")
    generate.add_argument("--out", type=Path, required=True, help="directory to write into")
    generate.add_argument("--type", choices=["rsa", "ec", "ed25519"], default="rsa")
    generate.add_argument("--force", action="store_true", help="overwrite an existing key pair")

    token = commands.add_parser("token", help="print a signed token (for development and tests)")
    token.add_argument("--sub", required=True, help="user id (the `sub` claim)")
    token.add_argument("--role", action="append", default=[], help="a role; repeatable")
    token.add_argument("--ttl", default="1h", help="lifetime, e.g. 900, 30m, 1h, 7d")
    token.add_argument(
        "--key", type=Path, help="private key PEM (default: DATA_DIR/keys/private.pem)"
    )
    token.add_argument("--issuer", help="`iss` claim (default: JWT_ISSUER)")
    token.add_argument("--audience", help="`aud` claim (default: JWT_AUDIENCE)")

    export = commands.add_parser("export-schema", help="print or check the GraphQL SDL")
    export.add_argument("--out", type=Path, help="write to this file instead of stdout")
    export.add_argument("--check", type=Path, help="exit 1 if this file differs from the schema")

    args = parser.parse_args(argv)
    if args.command in ("serve", "demo"):
        try:
            settings = Settings()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
            )
            print(f"refusing to start: invalid configuration: {problems}", file=sys.stderr)
            return 2
        if args.command == "demo":
            from app.demo import run_demo

            return run_demo(settings)
        from app.server import serve as run_server

        return run_server(settings, host=args.host, port=args.port, workers=args.workers)
    if args.command == "keys":
        return _keys_generate(args.out, args.type, args.force)
    if args.command == "token":
        return _token(args)
    return _export_schema(args.out, args.check)


def _workers(value: str) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    if not value.isdigit() or not 1 <= int(value) <= 256:
        raise argparse.ArgumentTypeError("a number from 1 to 256, or 'auto'")
    return int(value)


def _keys_generate(out: Path, key_type: str, force: bool) -> int:
    from app.auth.keys import PRIVATE_KEY_NAME, write_jwks, write_key_pair

    if (out / PRIVATE_KEY_NAME).exists() and not force:
        print(f"{out / PRIVATE_KEY_NAME} exists; pass --force to replace it", file=sys.stderr)
        return 1
    private, public = write_key_pair(out, key_type)  # type: ignore[arg-type]
    jwks = write_jwks(public, out / "jwks.json")
    print(f"private key: {private}  (mode 0600: keep it with the token issuer only)")
    print(f"public key:  {public}   (give Larder this: JWT_PUBLIC_KEY_FILE={public})")
    print(f"JWKS:        {jwks}     (or this: JWT_JWKS_FILE={jwks})")
    return 0


def _token(args: argparse.Namespace) -> int:
    from app.auth.keys import PRIVATE_KEY_NAME, key_id, load_private_pem
    from app.auth.tokens import mint_token, parse_ttl

    settings = Settings()
    key_path = args.key or settings.dev_key_dir / PRIVATE_KEY_NAME
    try:
        ttl = parse_ttl(args.ttl)
        private = load_private_pem(key_path)
    except (OSError, ValueError) as exc:
        print(f"cannot mint a token: {exc}", file=sys.stderr)
        if not args.key:
            print(
                "run `python -m app serve` once (it creates a dev key) or pass --key",
                file=sys.stderr,
            )
        return 1
    print(
        mint_token(
            private,
            sub=args.sub,
            roles=args.role,
            ttl_seconds=ttl,
            issuer=args.issuer or settings.jwt_issuer,
            audience=args.audience or settings.jwt_audience,
            kid=key_id(private.public_key()),
            roles_claim=settings.jwt_roles_claim,
        )
    )
    return 0


def _export_schema(out: Path | None, check: Path | None) -> int:
    from app.schema import schema_sdl

    sdl = schema_sdl()
    if check is not None:
        if not check.exists() or check.read_text() != sdl:
            print(
                f"{check} is out of date: run `python -m app export-schema --out {check}`",
                file=sys.stderr,
            )
            return 1
        return 0
    if out is not None:
        out.write_text(sdl)
    else:
        sys.stdout.write(sdl)
    return 0
