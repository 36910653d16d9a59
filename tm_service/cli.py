"""``stepping-tm``: serve, db upgrade, tx list, tx show, auth new-token."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from tm_service.auth import Role
from tm_service.config import Settings, SettingsError, field_type

__all__ = ["main"]


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also STEPPING_<NAME> in the environment)")
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if field_type(f) is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text
            )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    return Settings.load(overrides=overrides)


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def _tune_gc() -> None:
    """A server allocates many short-lived objects per job: collect the young
    generation less often and keep start-up objects out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def cmd_serve(args: argparse.Namespace) -> int:
    from tm_service._logging import configure_logging
    from tm_service.server import ListenError, run

    settings = _settings(args)
    configure_logging(settings.log_level, json_lines=settings.log_json)
    try:
        if settings.workers > 1:
            from tm_service._workers import serve_workers

            return serve_workers(settings)
        _use_uvloop()
        _tune_gc()
        # A worker of ``--workers N`` shares its port with its siblings (SO_REUSEPORT).
        asyncio.run(run(settings, reuse_port=args.pool_worker))
    except ListenError as err:
        print(f"stepping-tm: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tm_service._db_health import migrate_when_reachable
    from tm_service._logging import configure_logging
    from tm_service.errors import StoreUnavailable
    from tm_service.store import EmbeddedPostgres

    settings = _settings(args)
    configure_logging(settings.log_level, json_lines=settings.log_json)
    url = settings.database_url or EmbeddedPostgres(Path(settings.embedded_pg_dir)).start()
    wait = migrate_when_reachable(url, revision=args.revision, timeout=settings.db_wait_seconds)
    try:
        if not asyncio.run(wait):
            return 1  # stopped by a signal while waiting
    except StoreUnavailable as err:
        print(f"stepping-tm: {err}", file=sys.stderr)
        return 1
    print(f"database upgraded to {args.revision}")
    return 0


def cmd_tx(args: argparse.Namespace) -> int:
    from tm_service._tx_cli import list_transactions, show_transaction

    if args.tx_command == "list":
        return asyncio.run(list_transactions(args))
    return asyncio.run(show_transaction(args))


def cmd_auth_new_token(args: argparse.Namespace) -> int:
    from tm_service.auth import new_token_text

    print(new_token_text(args.principal, args.role), end="")
    return 0


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="127.0.0.1:36790", help="the TM's address")
    parser.add_argument("--tls-ca", help="PEM CA file: connect with TLS, trusting this CA")
    parser.add_argument("--tls-cert", help="PEM client certificate (mTLS; with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-server-name", help="expect this name in the TM's certificate")
    parser.add_argument("--token", help="bearer token (sent as 'authorization: Bearer ...')")
    parser.add_argument("--token-file", help="read the bearer token from this file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepping-tm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the TM")
    _add_setting_flags(serve)
    # Set by ``--workers N`` on the processes it starts; not for people.
    serve.add_argument("--pool-worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    _add_setting_flags(up)
    up.set_defaults(func=cmd_db_upgrade)

    tx = sub.add_parser("tx", help="inspect transactions through a running TM")
    tx_sub = tx.add_subparsers(dest="tx_command", required=True)
    for name, help_text in (("list", "list transactions"), ("show", "show one transaction")):
        p = tx_sub.add_parser(name, help=help_text)
        _add_connection_flags(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "list":
            p.add_argument(
                "--status",
                action="append",
                default=[],
                help="only this status (repeatable), e.g. FAILED",
            )
            p.add_argument("--limit", type=int, default=50)
            p.add_argument("--page-token", default="")
        else:
            p.add_argument("gid")
        p.set_defaults(func=cmd_tx)

    auth = sub.add_parser("auth", help="credentials for the TM's auth file")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True)
    token = auth_sub.add_parser(
        "new-token", help="print a fresh bearer token (once) and the TOML to add for it"
    )
    token.add_argument("--principal", required=True, help="the principal's name")
    token.add_argument(
        "--role",
        action="append",
        default=[],
        choices=[r.value for r in Role],
        help="a role (repeatable; default client)",
    )
    token.set_defaults(func=cmd_auth_new_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: Any = args.func(args)
    except SettingsError as err:
        print(f"stepping-tm: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
