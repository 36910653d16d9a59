"""``stepping-tm tx list|show``: tables for people, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

__all__ = ["list_transactions", "show_transaction"]


def _status(value: int) -> str:
    return tm_pb2.TransactionStatus.Name(value).removeprefix("TRANSACTION_STATUS_")  # type: ignore[arg-type]


def _step_status(value: int) -> str:
    return tm_pb2.StepStatus.Name(value).removeprefix("STEP_STATUS_")  # type: ignore[arg-type]


def _time(ts: object) -> str:
    from google.protobuf.timestamp_pb2 import Timestamp

    assert isinstance(ts, Timestamp)
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """Plaintext, or TLS when a CA or client certificate is given (--tls-*)."""
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return grpc.aio.insecure_channel(args.target)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("stepping-tm: --tls-cert and --tls-key go together")

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    creds = grpc.ssl_channel_credentials(read(args.tls_ca), read(args.tls_key), read(args.tls_cert))
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.aio.secure_channel(args.target, creds, options=options)


def _metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    token = args.token
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    return (("authorization", f"Bearer {token}"),) if token else ()


def _fail(err: grpc.aio.AioRpcError) -> int:
    print(f"stepping-tm: {err.code().name}: {err.details()}", file=sys.stderr)
    return 1


async def list_transactions(args: argparse.Namespace) -> int:
    statuses = []
    for s in args.status:
        name = s.upper()
        name = name if name.startswith("TRANSACTION_STATUS_") else "TRANSACTION_STATUS_" + name
        try:
            statuses.append(tm_pb2.TransactionStatus.Value(name))
        except ValueError:
            print(f"stepping-tm: unknown status {s!r}", file=sys.stderr)
            return 2
    async with _channel(args) as channel:
        stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
        try:
            resp = await stub.ListTransactions(
                tm_pb2.ListTransactionsRequest(
                    statuses=statuses, page_size=args.limit, page_token=args.page_token
                ),
                timeout=10,
                metadata=_metadata(args),
            )
        except grpc.aio.AioRpcError as err:
            return _fail(err)
    if args.json:
        print(json.dumps(MessageToDict(resp), indent=2))
        return 0
    rows = [["GID", "STATUS", "MODE", "STEPS", "CREATED", "OWNER", "ERROR"]]
    for t in resp.transactions:
        done = sum(1 for s in t.steps if s.status == tm_pb2.STEP_STATUS_SUCCEEDED)
        rows.append(
            [
                t.gid,
                _status(t.status),
                tm_pb2.Mode.Name(t.mode).removeprefix("MODE_"),
                f"{done}/{len(t.steps)}",
                _time(t.create_time),
                t.owner or "-",
                t.error[:60],
            ]
        )
    print(_table(rows))
    if resp.next_page_token:
        print(f"\nmore: --page-token {resp.next_page_token}")
    return 0


async def show_transaction(args: argparse.Namespace) -> int:
    async with _channel(args) as channel:
        stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
        try:
            resp = await stub.GetTransaction(
                tm_pb2.GetTransactionRequest(gid=args.gid), timeout=10, metadata=_metadata(args)
            )
        except grpc.aio.AioRpcError as err:
            return _fail(err)
    t = resp.transaction
    if args.json:
        print(json.dumps(MessageToDict(t), indent=2))
        return 0
    print(f"gid:      {t.gid}")
    print(f"status:   {_status(t.status)}")
    print(f"mode:     {tm_pb2.Mode.Name(t.mode).removeprefix('MODE_')}")
    print(f"owner:    {t.owner or '-'}")
    print(f"created:  {_time(t.create_time)}")
    print(f"updated:  {_time(t.update_time)}")
    print(f"finished: {_time(t.finish_time)}")
    if t.error:
        print(f"error:    {t.error}")
    rows = [["#", "NAME", "STATUS", "ATTEMPTS", "LAST ERROR"]]
    for s in t.steps:
        rows.append(
            [str(s.index), s.name, _step_status(s.status), str(s.attempts), s.last_error[:70]]
        )
    print()
    print(_table(rows))
    return 0
