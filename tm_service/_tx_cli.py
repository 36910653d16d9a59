"""``stepping-tm tx ...``: list, count, show, cancel, resume, purge through a running TM.

Tables for people, ``--json`` for scripts; both use the same short status names
(``FAILED``, not ``TRANSACTION_STATUS_FAILED``). Times are printed in UTC with the zone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

__all__ = [
    "STATUS_NAMES",
    "TxCliError",
    "cancel_transaction",
    "count_transactions",
    "cut",
    "list_transactions",
    "parse_duration",
    "parse_statuses",
    "parse_time",
    "purge_transactions",
    "resume_transaction",
    "show_transaction",
]

_STATUS_PREFIX = "TRANSACTION_STATUS_"
STATUS_NAMES = tuple(
    n.removeprefix(_STATUS_PREFIX)
    for n in tm_pb2.TransactionStatus.keys()  # noqa: SIM118 - an enum wrapper, not a dict
    if n != _STATUS_PREFIX + "UNSPECIFIED"
)
FINAL_NAMES = ("SUCCEEDED", "ABORTED", "FAILED")
_RPC_TIMEOUT = 30.0
_PURGE_TIMEOUT = 3600.0
_ENUM_PREFIXES = {
    "status": (_STATUS_PREFIX, "STEP_STATUS_"),
    "mode": ("MODE_",),
    "op": ("ATTEMPT_OP_",),
}


class TxCliError(Exception):
    """A bad flag value: printed as one line, exit status 2."""


def _status(value: int) -> str:
    return tm_pb2.TransactionStatus.Name(value).removeprefix(_STATUS_PREFIX)  # type: ignore[arg-type]


def _step_status(value: int) -> str:
    return tm_pb2.StepStatus.Name(value).removeprefix("STEP_STATUS_")  # type: ignore[arg-type]


def _mode(value: int) -> str:
    return tm_pb2.Mode.Name(value).removeprefix("MODE_")  # type: ignore[arg-type]


# -- parsing flag values ---------------------------------------------------------------
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, flag: str) -> float:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` (or ``500ms``) in seconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise TxCliError(f"{flag}: {text!r} is not a duration like 90s, 15m, 1h, 7d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_time(text: str, flag: str, now: datetime | None = None) -> datetime:
    """A duration ago (``1h``) or an ISO 8601 time (no zone given: UTC)."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text.strip()):
        return now - timedelta(seconds=parse_duration(text, flag))
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TxCliError(
            f"{flag}: {text!r} is neither a duration ago (1h, 7d) nor a time (2026-12-01T10:00:00Z)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_statuses(values: list[str], *, allowed: tuple[str, ...] = STATUS_NAMES) -> list[int]:
    """``--status FAILED,SUBMITTED`` (repeatable, any case, prefix optional)."""
    out: list[int] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            name = part.upper().removeprefix(_STATUS_PREFIX)
            if name not in allowed:
                raise TxCliError(f"--status: unknown status {part!r}; valid: {', '.join(allowed)}")
            out.append(tm_pb2.TransactionStatus.Value(_STATUS_PREFIX + name))
    return out


def _tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise TxCliError(f"--tag: {value!r} is not KEY=VALUE")
        tags[key] = val
    return tags


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC).replace(tzinfo=None))
    return ts


def build_filter(args: argparse.Namespace) -> tm_pb2.TransactionFilter:
    f = tm_pb2.TransactionFilter(
        tags=_tags(args.tag),
        gid_prefix=args.gid_prefix,
        target=args.step_target,
        method=args.method,
        error_contains=args.error,
        needs_attention=args.needs_attention,
    )
    if args.mode:
        f.mode = tm_pb2.Mode.Value("MODE_" + args.mode.upper())
    for flag, attr, field in (
        ("--since", "since", "created_after"),
        ("--until", "until", "created_before"),
        ("--finished-since", "finished_since", "finished_after"),
        ("--finished-until", "finished_until", "finished_before"),
    ):
        value = getattr(args, attr)
        if value:
            getattr(f, field).CopyFrom(_ts(parse_time(value, flag)))
    return f


# -- printing ----------------------------------------------------------------------------
def _time(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cut(text: str, width: int) -> str:
    """One line of at most ``width`` characters; what is cut is marked with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _short_enums(value: Any, key: str = "") -> Any:
    """Proto JSON with enum names as the table prints them (FAILED, SAGA, ...)."""
    if isinstance(value, dict):
        return {k: _short_enums(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_enums(v, key) for v in value]
    if isinstance(value, str) and key in _ENUM_PREFIXES:
        for prefix in _ENUM_PREFIXES[key]:
            value = value.removeprefix(prefix)
    return value


def _print_json(message: Any) -> None:
    print(json.dumps(_short_enums(MessageToDict(message)), indent=2))


# -- the connection -------------------------------------------------------------------
def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """Plaintext, or TLS when a CA or client certificate is given (--tls-*)."""
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return grpc.aio.insecure_channel(args.target)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise TxCliError("--tls-cert and --tls-key go together")

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    creds = grpc.ssl_channel_credentials(read(args.tls_ca), read(args.tls_key), read(args.tls_cert))
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.aio.secure_channel(args.target, creds, options=options)


def _metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    token = args.token or os.environ.get("STEPPING_TM_TOKEN", "")
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    return (("authorization", f"Bearer {token}"),) if token else ()


if TYPE_CHECKING:
    Stub = tm_pb2_grpc.TransactionManagerServiceAsyncStub


async def _call(
    args: argparse.Namespace,
    do: Callable[[Stub, tuple[tuple[str, str], ...]], Awaitable[Any]],
) -> Any:
    """Run ``do`` against the TM; an RPC error becomes one line on stderr (None back)."""
    async with _channel(args) as channel:
        stub: Stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
        try:
            return await do(stub, _metadata(args))
        except grpc.aio.AioRpcError as err:
            details = err.details() or ""
            if err.code() is grpc.StatusCode.UNAVAILABLE:
                details = f"cannot reach the TM at {args.target} ({cut(details, 160)})"
            print(f"stepping-tm: {err.code().name}: {details}", file=sys.stderr)
            return None


# -- the commands ----------------------------------------------------------------------
async def list_transactions(args: argparse.Namespace) -> int:
    request = tm_pb2.ListTransactionsRequest(
        statuses=parse_statuses(args.status),  # type: ignore[arg-type]
        page_size=args.limit,
        page_token=args.page_token,
        filter=build_filter(args),
    )
    resp = await _call(
        args, lambda stub, md: stub.ListTransactions(request, timeout=_RPC_TIMEOUT, metadata=md)
    )
    if resp is None:
        return 1
    if args.json:
        _print_json(resp)
        return 0
    rows = [["GID", "STATUS", "MODE", "STEPS", "CREATED", "OWNER", "TAGS", "ERROR"]]
    for t in resp.transactions:
        done = sum(1 for s in t.steps if s.status == tm_pb2.STEP_STATUS_SUCCEEDED)
        tags = ",".join(f"{k}={v}" for k, v in sorted(t.tags.items()))
        rows.append(
            [
                t.gid,
                _status(t.status),
                _mode(t.mode),
                f"{done}/{len(t.steps)}",
                _time(t.create_time),
                t.owner or "-",
                cut(tags, 40) or "-",
                cut(t.error, 60),
            ]
        )
    print(_table(rows))
    if resp.next_page_token:
        print(f"\nmore: --page-token {resp.next_page_token}")
    return 0


async def count_transactions(args: argparse.Namespace) -> int:
    request = tm_pb2.CountTransactionsRequest(filter=build_filter(args))
    resp = await _call(
        args, lambda stub, md: stub.CountTransactions(request, timeout=_RPC_TIMEOUT, metadata=md)
    )
    if resp is None:
        return 1
    if args.json:
        _print_json(resp)
        return 0
    rows = [["STATUS", "COUNT"]]
    rows += [[_status(c.status), str(c.count)] for c in resp.counts]
    rows.append(["TOTAL", str(resp.total)])
    print(_table(rows))
    return 0


def _print_attempts(step: tm_pb2.StepState) -> None:
    for a in step.history:
        op = tm_pb2.AttemptOp.Name(a.op).removeprefix("ATTEMPT_OP_")
        took = a.duration.seconds + a.duration.nanos / 1e9
        code = grpc.StatusCode.OK.name if a.code == 0 else _code_name(a.code)
        error = f"  {cut(a.error, 80)}" if a.error else ""
        print(f"      {op:<12} #{a.number:<3} {_time(a.start_time)}  {took:.3f}s  {code}{error}")


def _code_name(code: int) -> str:
    for c in grpc.StatusCode:
        if c.value[0] == code:
            return str(c.name)
    return str(code)


async def show_transaction(args: argparse.Namespace) -> int:
    request = tm_pb2.GetTransactionRequest(gid=args.gid)
    resp = await _call(
        args, lambda stub, md: stub.GetTransaction(request, timeout=_RPC_TIMEOUT, metadata=md)
    )
    if resp is None:
        return 1
    t = resp.transaction
    if args.json:
        _print_json(t)
        return 0
    _print_transaction(t)
    return 0


def _print_transaction(t: tm_pb2.Transaction) -> None:
    print(f"gid:      {t.gid}")
    print(f"status:   {_status(t.status)}")
    print(f"mode:     {_mode(t.mode)}")
    print(f"owner:    {t.owner or '-'}")
    if t.tags:
        print(f"tags:     {', '.join(f'{k}={v}' for k, v in sorted(t.tags.items()))}")
    print(f"created:  {_time(t.create_time)}")
    print(f"updated:  {_time(t.update_time)}")
    print(f"finished: {_time(t.finish_time)}")
    if t.error:
        print(f"error:    {t.error}")
    if t.needs_attention:
        print(f"attention: {t.needs_attention}")
    if t.cancel_reason:
        print(f"cancel:   {t.cancel_reason}")
    print()
    print(
        _table(
            [["#", "NAME", "STATUS", "ATTEMPTS", "LAST ERROR"]]
            + [
                [
                    str(s.index),
                    s.name,
                    _step_status(s.status),
                    str(s.attempts),
                    cut(s.last_error, 70),
                ]
                for s in t.steps
            ]
        )
    )
    if any(s.history for s in t.steps):
        print("\nhistory (oldest first):")
        for s in t.steps:
            if s.history:
                print(f"  step {s.index} {s.name}:")
                _print_attempts(s)


async def cancel_transaction(args: argparse.Namespace) -> int:
    request = tm_pb2.CancelRequest(gid=args.gid, reason=args.reason)
    resp = await _call(
        args, lambda stub, md: stub.Cancel(request, timeout=_RPC_TIMEOUT, metadata=md)
    )
    return _print_result(args, resp)


async def resume_transaction(args: argparse.Namespace) -> int:
    request = tm_pb2.ResumeRequest(gid=args.gid)
    resp = await _call(
        args, lambda stub, md: stub.Resume(request, timeout=_RPC_TIMEOUT, metadata=md)
    )
    return _print_result(args, resp)


def _print_result(args: argparse.Namespace, resp: Any) -> int:
    if resp is None:
        return 1
    if args.json:
        _print_json(resp.transaction)
    else:
        t = resp.transaction
        print(f"{t.gid}: {_status(t.status)}")
    return 0


async def purge_transactions(args: argparse.Namespace) -> int:
    older = Duration()
    older.FromNanoseconds(int(parse_duration(args.older_than, "--older-than") * 1e9))
    request = tm_pb2.PurgeTransactionsRequest(
        older_than=older,
        statuses=parse_statuses(args.status, allowed=FINAL_NAMES),  # type: ignore[arg-type]
        dry_run=args.dry_run,
    )
    resp = await _call(
        args,
        lambda stub, md: stub.PurgeTransactions(request, timeout=_PURGE_TIMEOUT, metadata=md),
    )
    if resp is None:
        return 1
    if args.json:
        print(json.dumps({"deleted": resp.deleted, "dryRun": args.dry_run}))
    elif args.dry_run:
        print(f"would delete {resp.deleted} transactions (dry run)")
    else:
        print(f"deleted {resp.deleted} transactions")
    return 0
