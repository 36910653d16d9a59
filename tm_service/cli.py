"""stepping-tm: serve, db upgrade, tx list|count|show|cancel|resume|purge, auth new-token."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from tm_service._tx_cli import STATUS_NAMES
from tm_service.auth import Role
from tm_service.config import Settings, SettingsError, field_type

__all__ = ["main"]

_ADDRESS_ENV = "STEPPING_TM_ADDRESS"
_TOKEN_ENV = "STEPPING_TM_TOKEN"
_DEFAULT_ADDRESS = "127.0.0.1:36790"


# What ``db upgrade`` reads of the settings (its --help lists only these).
_DB_UPGRADE_SETTINGS = (
    "database_url",
    "embedded_pg_dir",
    "embedded_pg_port",
    "db_wait_seconds",
    "log_level",
    "log_json",
)


def _add_setting_flags(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    group = parser.add_argument_group("settings (each also STEPPING_<NAME> in the environment)")
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = "(per replica)" if f.name == "replica_id" else repr(f.default)
        help_text = f.metadata.get("help", f.name.replace("_", " "))
        help_text = f"{help_text} (default: {default})".replace("%", "%%")
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
    from tm_service import _tx_cli as tx

    command = {
        "list": tx.list_transactions,
        "count": tx.count_transactions,
        "show": tx.show_transaction,
        "cancel": tx.cancel_transaction,
        "resume": tx.resume_transaction,
        "purge": tx.purge_transactions,
    }[args.tx_command]
    try:
        return asyncio.run(command(args))
    except tx.TxCliError as err:
        print(f"stepping-tm: {err}", file=sys.stderr)
        return 2


def cmd_auth_new_token(args: argparse.Namespace) -> int:
    from tm_service.auth import new_token_text

    print(new_token_text(args.principal, args.role), end="")
    return 0


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(_ADDRESS_ENV) or _DEFAULT_ADDRESS
    parser.add_argument(
        "--tm",
        "--target",
        dest="target",
        default=default,
        metavar="ADDRESS",
        help=f"the TM's address (host:port); ${_ADDRESS_ENV} when set",
    )
    parser.add_argument("--tls-ca", help="PEM CA file: connect with TLS, trusting this CA")
    parser.add_argument("--tls-cert", help="PEM client certificate (mTLS; with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-server-name", help="expect this name in the TM's certificate")
    parser.add_argument(
        "--token",
        help=f"bearer token (sent as 'authorization: Bearer ...'); ${_TOKEN_ENV} when set",
    )
    parser.add_argument("--token-file", help="read the bearer token from this file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_filter_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("filters (all must hold)")
    g.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only jobs with this tag (repeatable: all must match)",
    )
    g.add_argument(
        "--since",
        metavar="WHEN",
        help="created at or after: a duration ago (1h, 7d) or an ISO time",
    )
    g.add_argument("--until", metavar="WHEN", help="created before (as --since)")
    g.add_argument("--finished-since", metavar="WHEN", help="finished at or after (as --since)")
    g.add_argument("--finished-until", metavar="WHEN", help="finished before (as --since)")
    g.add_argument("--gid-prefix", default="", help="the gid starts with this")
    g.add_argument(
        "--step-target",
        default="",
        metavar="HOST:PORT",
        help="a step's action or compensation calls this participant address",
    )
    g.add_argument(
        "--method",
        "--step-method",
        dest="method",
        default="",
        metavar="/PKG.SERVICE/METHOD",
        help="a step's action or compensation calls this method",
    )
    g.add_argument(
        "--error",
        default="",
        help="the job's error or a step's last error contains this (any case)",
    )
    g.add_argument("--mode", choices=["message", "saga"], help="only this mode")
    g.add_argument(
        "--needs-attention", action="store_true", help="only jobs waiting for an operator"
    )


def _add_tx_commands(sub: Any) -> None:
    tx = sub.add_parser(
        "tx",
        help="find and act on transactions through a running TM",
        description="Find and act on transactions through a running TM.",
    )
    tx_sub = tx.add_subparsers(dest="tx_command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = tx_sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            formatter_class=_Formatter,
        )
        _add_connection_flags(p)
        p.set_defaults(func=cmd_tx)
        return p

    statuses = ", ".join(STATUS_NAMES)
    p = command("list", "list transactions, newest first")
    p.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="S1,S2",
        help=f"only these statuses (comma-separated, repeatable): {statuses}",
    )
    _add_filter_flags(p)
    p.add_argument(
        "--limit", type=int, default=50, help="at most this many (the TM caps it at 1000)"
    )
    p.add_argument("--page-token", default="", help="the next page, as printed by the last one")
    p = command("count", "count transactions per status")
    _add_filter_flags(p)
    p = command("show", "show one transaction with each step's history")
    p.add_argument("gid", help="the transaction's gid")
    p = command("cancel", "cancel a transaction (a saga compensates what it did)")
    p.add_argument("gid", help="the transaction's gid")
    p.add_argument("--reason", default="", help="why (stored as the job's error)")
    p = command("resume", "run a FAILED transaction again from its first unfinished step")
    p.add_argument("gid", help="the transaction's gid")
    p = command("purge", "delete finished transactions now (admin); prints how many")
    p.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="finished longer ago than this: 90s, 15m, 12h, 7d, 2w",
    )
    p.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="S1,S2",
        help="only these final statuses (SUCCEEDED,ABORTED,FAILED); default all three",
    )
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help; flags without a useful default say nothing more."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, "", [], False) or "default" in text:
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepping-tm",
        description="Stepping TM: a transaction manager that runs multi-step jobs over gRPC.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the TM", description="Run the TM.", formatter_class=_Formatter
    )
    _add_setting_flags(serve)
    # Set by ``--workers N`` on the processes it starts; not for people.
    serve.add_argument("--pool-worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema", description="The database schema.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    up = db_sub.add_parser(
        "upgrade",
        help="apply migrations",
        description="Apply the schema migrations (waits for the database up to db_wait_seconds).",
        formatter_class=_Formatter,
    )
    up.add_argument("revision", nargs="?", default="head", help="migrate up to this revision")
    _add_setting_flags(up, only=_DB_UPGRADE_SETTINGS)
    up.set_defaults(func=cmd_db_upgrade)

    _add_tx_commands(sub)
    _add_console_command(sub)

    auth = sub.add_parser(
        "auth", help="credentials for the TM's auth file", description="Credentials."
    )
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stepping-tm")
    except PackageNotFoundError:
        return "unknown"


# -- stepping-tm console (README "Console") ------------------------------------------
def _add_console_command(sub: Any) -> None:
    p = sub.add_parser(
        "console",
        help="run the web console against a TM",
        description="Serve the web console; it calls the TM's gRPC API with each user's token.",
        formatter_class=_Formatter,
    )
    env = os.environ
    p.add_argument(
        "--tm",
        default=env.get("STEPPING_TM_ADDRESS") or "127.0.0.1:36790",
        help="the TM's gRPC address (STEPPING_TM_ADDRESS)",
    )
    p.add_argument(
        "--listen",
        default=env.get("STEPPING_CONSOLE_LISTEN") or "127.0.0.1:36792",
        help="HTTP host:port (STEPPING_CONSOLE_LISTEN)",
    )
    p.add_argument(
        "--trace-url",
        default=env.get("STEPPING_CONSOLE_TRACE_URL", ""),
        help="trace link, {trace_id} replaced (STEPPING_CONSOLE_TRACE_URL)",
    )
    for name, what in (
        ("ca", "PEM CA of the TM's certificate"),
        ("cert", "client certificate (mTLS)"),
        ("key", "its private key"),
        ("server-name", "the TM's name in its certificate"),
    ):
        var = (
            "STEPPING_CONSOLE_TLS_"
            + name.replace("-", "_").upper()
            + ("" if name == "server-name" else "_FILE")
        )
        p.add_argument(f"--tls-{name}", default=env.get(var, ""), help=f"{what} ({var})")
    p.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    from tm_service._logging import configure_logging
    from tm_service.console import ConsoleConfig, ConsoleServer, TmTls

    configure_logging("INFO", json_lines=False)

    async def serve() -> None:
        server = ConsoleServer(
            args.tm,
            args.listen,
            TmTls(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name),
            ConsoleConfig(trace_url=args.trace_url),
        )
        await server.start()
        print(f"stepping console at {server.url} (TM {args.tm})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except OSError as err:
        print(f"stepping-tm console: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: Any = args.func(args)
        sys.stdout.flush()
    except SettingsError as err:
        print(f"stepping-tm: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): no traceback; stdout to /dev/null so the
        # interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
