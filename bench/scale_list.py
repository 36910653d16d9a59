"""List/Count/Get latency and purge rate at scale (issue 13): ``python -m bench.scale_list``.

1. Migrates a database to 0004 (no search indexes) and bulk-loads ``--rows`` finished
   jobs with two steps each in SQL (``generate_series``, chunks of 100k: no row-by-row
   inserts), then upgrades to head, timing the index build of migration 0005.
2. Starts a real TM on it and measures, over gRPC, ListTransactions with each filter,
   CountTransactions and GetTransaction (p50/p95 of ``--repeat`` calls), and prints the
   EXPLAIN (ANALYZE, BUFFERS) plan of each List query as the store sends it.
3. Purges ``--purge-rows`` of the oldest jobs with the retention batches and reports
   the rate (rows/s).

``load(url, rows)`` is the loader on its own, for other benchmarks.
Without ``--database-url`` an embedded Postgres in a temporary directory is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from sqlalchemy import event, select
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from tm_service import Settings, TmServer
from tm_service.domain import Mode, TxStatus
from tm_service.retention import purge_all
from tm_service.store import EmbeddedPostgres, PostgresStore, TxFilter, upgrade
from tm_service.store._schema import transactions
from tm_service.store._search import conditions

__all__ = ["load", "main"]

CHUNK = 100_000
SPAN_DAYS = 60  # create times spread evenly over this many days before now

# One row per job i (1-based): ~90% SUCCEEDED, 6% FAILED, 2% ABORTED, 2% SUBMITTED
# (unfinished, due in a year); 30% sagas; tags order_id = i and shop = shop-(i % 100).
_JOBS_SQL = """
INSERT INTO stepping_transactions (
  gid, status, mode, concurrent, step_timeout, check_prepared_after, database,
  fingerprint, error, next_time, lease_token, create_time, update_time, finish_time, tags)
SELECT
  'bench-' || lpad(i::text, 10, '0'),
  s.status, CASE WHEN i % 10 < 3 THEN 2 ELSE 1 END, false, 3.0, 10.0, '',
  '\\x00'::bytea,
  CASE WHEN s.status = 6 THEN 'step 1 failed: UNAVAILABLE: connection refused by payments-'
       || (i % 50) ELSE '' END,
  -- The unfinished ones are not due for a year: the TM under test must not run them.
  CASE WHEN s.status = 2 THEN now() + interval '365 days' ELSE c.t END,
  0, c.t, c.t + interval '1 second',
  CASE WHEN s.status = 2 THEN NULL ELSE c.t + interval '1 second' END,
  jsonb_build_object('order_id', i::text, 'shop', 'shop-' || (i % 100))
FROM generate_series($1::bigint, $2::bigint) AS i
CROSS JOIN LATERAL (SELECT CASE WHEN i % 50 = 7 THEN 2 WHEN i % 50 IN (1, 2, 3) THEN 6
                               WHEN i % 50 = 4 THEN 4 ELSE 3 END AS status) s
CROSS JOIN LATERAL (SELECT now() - ($3::bigint - i) * $4::float8 * interval '1 second' AS t) c
"""

_STEPS_SQL = """
INSERT INTO stepping_steps (
  gid, idx, name, action_target, action_method, comp_target, comp_method, payload, headers,
  initial_interval, backoff_coefficient, maximum_interval, maximum_attempts, timeout,
  status, attempts, last_error)
SELECT
  'bench-' || lpad(i::text, 10, '0'), k,
  CASE WHEN k = 0 THEN 'reserve' ELSE 'charge' END,
  CASE WHEN k = 0 THEN 'stock-' || (i % 20) || ':50051' ELSE 'payments-' || (i % 50) || ':50051'
  END,
  CASE WHEN k = 0 THEN '/shop.v1.Stock/Reserve' ELSE '/shop.v1.Payments/Charge' END,
  CASE WHEN i % 10 < 3 THEN 'stock-' || (i % 20) || ':50051' END,
  CASE WHEN i % 10 < 3 THEN '/shop.v1.Stock/Release' END,
  ''::bytea, '{}'::jsonb, 1.0, 2.0, 60.0, 0, 3.0,
  CASE WHEN i % 50 IN (1, 2, 3) AND k = 1 THEN 3 WHEN i % 50 = 7 AND k = 1 THEN 1 ELSE 2 END,
  1,
  CASE WHEN i % 50 IN (1, 2, 3) AND k = 1 THEN 'UNAVAILABLE: connection refused ' || (i % 1000)
       ELSE '' END
FROM generate_series($1::bigint, $2::bigint) AS i CROSS JOIN generate_series(0, 1) AS k
"""


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def load(url: str, rows: int, *, log: Callable[[str], None] = print) -> float:
    """Insert ``rows`` jobs (2 steps each) into a migrated database; seconds taken."""
    conn = await asyncpg.connect(_plain(url))
    started = time.monotonic()
    try:
        step = SPAN_DAYS * 86400 / max(rows, 1)
        for lo in range(1, rows + 1, CHUNK):
            hi = min(lo + CHUNK - 1, rows)
            async with conn.transaction():
                await conn.execute(_JOBS_SQL, lo, hi, rows, step)
                await conn.execute(_STEPS_SQL, lo, hi)
            log(f"  loaded {hi:,} jobs ({time.monotonic() - started:.0f}s)")
        # What autovacuum does after a bulk insert (its insert threshold, Postgres 13+):
        # statistics, and the visibility map that lets counts scan only an index.
        await conn.execute("VACUUM (ANALYZE) stepping_transactions")
        await conn.execute("VACUUM (ANALYZE) stepping_steps")
    finally:
        await conn.close()
    return time.monotonic() - started


def _ts(when: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC).replace(tzinfo=None))
    return ts


def _cases(rows: int) -> list[tuple[str, tm_pb2.ListTransactionsRequest, TxFilter]]:
    """(name, the List request, the same filter for EXPLAIN)."""
    now = datetime.now(UTC)
    day = now - timedelta(days=1)
    order = str(rows // 2)
    R = tm_pb2.ListTransactionsRequest
    F = tm_pb2.TransactionFilter
    failed = [tm_pb2.TRANSACTION_STATUS_FAILED]
    return [
        ("newest page (no filter)", R(), TxFilter()),
        ("status FAILED", R(statuses=failed), TxFilter(statuses=(TxStatus.FAILED,))),
        ("tag order_id (1 match)", R(filter=F(tags={"order_id": order})),
         TxFilter(tags={"order_id": order})),
        ("tag shop (1% of rows)", R(filter=F(tags={"shop": "shop-7"})),
         TxFilter(tags={"shop": "shop-7"})),
        ("tag shop + FAILED", R(statuses=failed, filter=F(tags={"shop": "shop-1"})),
         TxFilter(statuses=(TxStatus.FAILED,), tags={"shop": "shop-1"})),
        ("gid prefix (10 matches)", R(filter=F(gid_prefix="bench-00000012" + "3")),
         TxFilter(gid_prefix="bench-000000123")),
        ("created in the last day", R(filter=F(created_after=_ts(day))),
         TxFilter(created_after=day)),
        ("finished 30-31 days ago", R(filter=F(finished_after=_ts(now - timedelta(days=31)),
                                               finished_before=_ts(now - timedelta(days=30)))),
         TxFilter(finished_after=now - timedelta(days=31),
                  finished_before=now - timedelta(days=30))),
        ("step target (2% of rows)", R(filter=F(target="payments-7:50051")),
         TxFilter(target="payments-7:50051")),
        ("compensation method (30%)", R(filter=F(method="/shop.v1.Stock/Release")),
         TxFilter(method="/shop.v1.Stock/Release")),
        ("error contains (rare)", R(filter=F(error_contains="refused 751")),
         TxFilter(error_contains="refused 751")),
        ("error contains (6%)", R(filter=F(error_contains="connection refused")),
         TxFilter(error_contains="connection refused")),
        ("mode SAGA + FAILED", R(statuses=failed, filter=F(mode=tm_pb2.MODE_SAGA)),
         TxFilter(statuses=(TxStatus.FAILED,), mode=Mode.SAGA)),
    ]  # fmt: skip


async def _latency(call: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, float]:
    await call()  # warm: plan cache, buffers
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
    }


async def _explain(store: PostgresStore, f: TxFilter) -> str:
    """The plan of the List query the store sends for ``f`` (first page of 50)."""
    query = (
        select(transactions)
        .where(*conditions(f))
        .order_by(transactions.c.create_time.desc(), transactions.c.gid.desc())
        .limit(51)
    )

    def prefix(  # noqa: PLR0917 - SQLAlchemy's event signature
        conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool
    ) -> Any:
        if conn.info.get("explain"):
            statement = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement
        return statement, params

    event.listen(store.engine.sync_engine, "before_cursor_execute", prefix, retval=True)
    try:
        async with store.engine.connect() as conn:
            conn.info["explain"] = True
            try:
                lines = (await conn.execute(query)).scalars().all()
            finally:
                conn.info["explain"] = False
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", prefix)
    return "\n".join(str(line) for line in lines)


async def _ok(request: bytes, context: Any) -> bytes:
    return b""


class _Participant(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Every method answers OK with an empty body (the steps of the Submit measurement)."""

    _handler = grpc.unary_unary_rpc_method_handler(_ok)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes]:
        return self._handler


_CLAIM_EXPLAIN = """
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT gid FROM stepping_transactions
WHERE status IN (1, 2, 5) AND next_time <= now()
  AND (lease_expires IS NULL OR lease_expires < now())
ORDER BY next_time LIMIT 100 FOR UPDATE SKIP LOCKED
"""


async def _write_path(server: TmServer, stub: Any, url: str, repeat: int) -> dict[str, Any]:
    """Submit(wait_result) of 3 steps, the sweeper's claim, and the claim's plan."""
    participant = grpc.aio.server()
    participant.add_generic_rpc_handlers((_Participant(),))
    port = participant.add_insecure_port("127.0.0.1:0")
    await participant.start()
    try:
        steps = [
            tm_pb2.Step(
                action=tm_pb2.Endpoint(target=f"127.0.0.1:{port}", method=f"/b.v1.B/S{i}"),
                payload=b"x" * 16,
            )
            for i in range(3)
        ]
        counter = iter(range(1 << 30))

        async def submit() -> None:
            gid = f"scale-submit-{time.time_ns()}-{next(counter)}"
            resp = await stub.Submit(
                tm_pb2.SubmitRequest(gid=gid, steps=steps, wait_result=True), timeout=30
            )
            assert resp.transaction.status == tm_pb2.TRANSACTION_STATUS_SUCCEEDED

        out: dict[str, Any] = {"submit_3_steps": await _latency(submit, repeat)}
        store = server.store
        assert store is not None

        async def claim() -> None:
            await store.claim_due(owner="scale-bench", lease=1.0, limit=100)

        out["claim_due"] = await _latency(claim, repeat)
        conn = await asyncpg.connect(_plain(url))
        try:
            rows = await conn.fetch(_CLAIM_EXPLAIN)
        finally:
            await conn.close()
        out["claim_plan"] = "\n".join(r[0] for r in rows)
        return out
    finally:
        await participant.stop(0)


async def _console_pages(server: TmServer, repeat: int) -> dict[str, dict[str, float]]:
    """The console's jobs page (one List + one Count): its ``Server-Timing`` app time."""
    import aiohttp

    assert server.console is not None
    pages = {
        "jobs page": "jobs",
        "jobs page, FAILED": "jobs?status=FAILED",
        "jobs page, tag shop": "jobs?tag=shop%3Dshop-7",
    }
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as http:
        for name, path in pages.items():
            times: list[float] = []
            for _ in range(repeat + 1):
                async with http.get(server.console.url + path) as resp:
                    assert resp.status == 200, (path, resp.status)
                    await resp.read()
                    timing = resp.headers["Server-Timing"]
                times.append(float(timing.partition("dur=")[2]))
            times = sorted(times[1:])  # the first one warms up
            out[name] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
            }
    return out


async def measure(url: str, rows: int, repeat: int, purge_rows: int) -> dict[str, Any]:
    settings = Settings.load(
        env={},
        overrides={
            "database_url": url,
            "listen": "127.0.0.1:0",
            "migrate_on_start": False,
            "retention_seconds": 0.0,
            "console_listen": "127.0.0.1:0",
            # The raw time of each query, however long (the TM's default stops at 5 s).
            "search_timeout_seconds": 0.0,
        },
    )
    server = TmServer(settings)
    await server.start()
    report: dict[str, Any] = {"rows": rows, "list": {}, "plans": {}}
    try:
        assert server.store is not None
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
            for name, request, f in _cases(rows):
                found = len((await stub.ListTransactions(request)).transactions)
                stats = await _latency(partial(stub.ListTransactions, request), repeat)
                report["list"][name] = {**stats, "returned": found}
                report["plans"][name] = await _explain(server.store, f)
                print(f"  List {name}: {stats} ({found} returned)")
            count_cases = {
                "Count, no filter": tm_pb2.CountTransactionsRequest(),
                "Count, tag shop": tm_pb2.CountTransactionsRequest(
                    filter=tm_pb2.TransactionFilter(tags={"shop": "shop-7"})
                ),
                "Count, last day": tm_pb2.CountTransactionsRequest(
                    filter=tm_pb2.TransactionFilter(
                        created_after=_ts(datetime.now(UTC) - timedelta(days=1))
                    )
                ),
            }
            report["count"] = {}
            for name, creq in count_cases.items():
                stats = await _latency(partial(stub.CountTransactions, creq), max(repeat // 4, 3))
                report["count"][name] = stats
                print(f"  {name}: {stats}")
            gid = f"bench-{rows // 3:010d}"
            get = tm_pb2.GetTransactionRequest(gid=gid)
            report["get"] = await _latency(partial(stub.GetTransaction, get), repeat)
            print(f"  Get: {report['get']}")
            report["console"] = await _console_pages(server, repeat)
            print(f"  console pages (server time): {report['console']}")
            report["write_path"] = await _write_path(server, stub, url, repeat)
            wp = report["write_path"]
            print(f"  Submit(wait_result, 3 steps): {wp['submit_3_steps']}")
            print(f"  sweeper claim (nothing due): {wp['claim_due']}")
        report["purge"] = await _purge(server.store, url, purge_rows)
        print(f"  purge: {report['purge']}")
    finally:
        await server.stop(grace=1.0)
    return report


async def _purge(store: PostgresStore, url: str, purge_rows: int) -> dict[str, Any]:
    conn = await asyncpg.connect(_plain(url))
    try:
        age = await conn.fetchval(
            "SELECT extract(epoch FROM now() - finish_time) FROM stepping_transactions"
            " WHERE finish_time IS NOT NULL ORDER BY finish_time OFFSET $1 LIMIT 1",
            purge_rows,
        )
    finally:
        await conn.close()
    older_than = float(age)
    t0 = time.monotonic()
    deleted = await purge_all(store, older_than=older_than, pause=0.0)
    took = time.monotonic() - t0
    return {
        "deleted": deleted,
        "seconds": round(took, 2),
        "rows_per_second": round(deleted / took) if took else None,
        "batch": 500,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database_url
    tmp: Path | None = None
    pg: EmbeddedPostgres | None = None
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="stepping-scale-", dir="/var/tmp"))
        pg = EmbeddedPostgres(tmp / "data", fsync=False)
        url = await asyncio.to_thread(pg.start)
    try:
        store = PostgresStore.from_url(url, pool_size=1)
        try:
            await upgrade(store.engine, "0004")
            print(f"loading {args.rows:,} jobs")
            load_s = await load(url, args.rows)
            t0 = time.monotonic()
            await upgrade(store.engine, "head")
            index_s = time.monotonic() - t0
        finally:
            await store.close()
        print(f"loaded in {load_s:.1f}s; migration 0005 (indexes) took {index_s:.1f}s")
        report = await measure(url, args.rows, args.repeat, args.purge_rows)
        report["load_seconds"] = round(load_s, 1)
        report["index_build_seconds"] = round(index_s, 1)
        return report
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_list",
        description="List/Count/Get latency and purge rate at scale.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs to load")
    parser.add_argument("--repeat", type=int, default=20, help="calls per measurement")
    parser.add_argument("--purge-rows", type=int, default=100_000, help="jobs to purge")
    parser.add_argument(
        "--database-url", default="", help="an EMPTY database to use (default: embedded)"
    )
    parser.add_argument("--json", default="", help="also write the report here")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    for name, plan in report["plans"].items():
        print(f"\n-- {name}\n{plan}")
    print(f"\n-- the sweeper's claim\n{report['write_path']['claim_plan']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
