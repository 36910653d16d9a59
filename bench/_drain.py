"""The backlog-drain scenario (issue 16, item 3): after a participant outage, N jobs are
due at once; how fast do one or more TM processes drain them, do fresh jobs keep a
bounded latency meanwhile, and does the TM's memory stay bounded?

The backlog is bulk-loaded with SQL (``generate_series``): N SUBMITTED message jobs of
K pending steps, every one due now, as the sweeper finds them after an outage in which
every attempt had failed. Then the TM starts (``--workers``), the sweeper claims them
(``STEPPING_SWEEP_BATCH_SIZE`` per pass, at most ``STEPPING_MAX_ACTIVE_JOBS`` running per
process) and calls the participants, which are up again. Meanwhile an open-loop client
submits fresh jobs (``Submit(wait_result)``) at ``fresh`` jobs/s and records their
latency; the TM's resident memory (all its processes) and the backlog left are sampled
every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from bench._options import DrainScenario
from bench._participant import METHOD
from bench._pgstats import PgServer
from bench._procs import Child, migrate_tm, start_tm
from tm_service.domain import Mode, StepStatus, TxStatus

__all__ = ["DrainResult", "load_backlog", "run_drain"]


@dataclass
class DrainResult:
    name: str
    jobs: int
    workers: int
    load_seconds: float
    drain_seconds: float
    jobs_per_second: float
    fresh: dict[str, Any]
    tm_rss_mib_max: float
    tm_rss_mib_last: float
    succeeded: int
    curve: list[tuple[float, int]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def one_line(self) -> str:
        f = self.fresh
        return (
            f"{self.name}: drained in {self.drain_seconds:.1f}s = {self.jobs_per_second:.0f} "
            f"jobs/s; fresh jobs n={f['count']} p50 {f['p50_ms']:.1f} ms p99 "
            f"{f['p99_ms']:.1f} ms max {f['max_ms']:.1f} ms, failed {f['failed']}; TM RSS "
            f"max {self.tm_rss_mib_max:.0f} MiB"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": "tm-drain",
            "name": self.name,
            "jobs": self.jobs,
            "workers": self.workers,
            "load_seconds": round(self.load_seconds, 2),
            "drain_seconds": round(self.drain_seconds, 2),
            "jobs_per_second": round(self.jobs_per_second, 1),
            "succeeded": self.succeeded,
            "fresh": self.fresh,
            "tm_rss_mib_max": round(self.tm_rss_mib_max, 1),
            "tm_rss_mib_last": round(self.tm_rss_mib_last, 1),
            "backlog_curve": self.curve,
            "tm_settings": self.settings,
        }


async def load_backlog(
    url: str, *, jobs: int, targets: list[str], payload: bytes, gid_prefix: str
) -> float:
    """Insert ``jobs`` due SUBMITTED jobs with one pending step per target; seconds taken."""
    started = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        chunk = 50_000
        for first in range(0, jobs, chunk):
            last = min(first + chunk, jobs) - 1
            async with conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO stepping_transactions
                      (gid, status, mode, concurrent, step_timeout, check_prepared_after,
                       fingerprint, next_time, create_time, update_time)
                    SELECT $1 || i, $2, $3, false, 3.0, 10.0, '\\x00'::bytea,
                           now() - interval '1 hour', now() - interval '1 hour', now()
                    FROM generate_series($4::int, $5::int) AS i
                    """,
                    gid_prefix,
                    int(TxStatus.SUBMITTED),
                    int(Mode.MESSAGE),
                    first,
                    last,
                )
                await conn.execute(
                    """
                    INSERT INTO stepping_steps
                      (gid, idx, name, action_target, action_method, payload, headers,
                       initial_interval, backoff_coefficient, maximum_interval,
                       maximum_attempts, timeout, status, attempts, last_error)
                    SELECT $1 || i, s.idx - 1, 'step-' || (s.idx - 1), s.target, $2, $3,
                           '{}'::jsonb, 1.0, 2.0, 60.0, 0, 3.0, $4, 12,
                           'UNAVAILABLE: connection refused (the outage)'
                    FROM generate_series($5::int, $6::int) AS i,
                         unnest($7::text[]) WITH ORDINALITY AS s(target, idx)
                    """,
                    gid_prefix,
                    METHOD,
                    payload,
                    int(StepStatus.PENDING),
                    first,
                    last,
                    targets,
                )
        await conn.execute("ANALYZE stepping_transactions")
        await conn.execute("ANALYZE stepping_steps")
    finally:
        await conn.close()
    return time.monotonic() - started


def _rss_mib(root: int) -> float:
    """Resident memory of ``root`` and its children (serve --workers), in MiB."""
    pids = [root]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        pids += [int(p) for p in children]
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024.0


class _Fresh:
    """Open-loop Submit(wait_result) of fresh jobs at a fixed rate; their latencies."""

    def __init__(self, target: str, steps: list[tuple[str, str]], rate: float) -> None:
        self._target = target
        self._steps = [
            tm_pb2.Step(action=tm_pb2.Endpoint(target=t, method=m), payload=b"fresh")
            for t, m in steps
        ]
        self._rate = rate
        self._prefix = f"fresh-{secrets.token_hex(3)}-"
        self.latencies: list[float] = []
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self, stub: tm_pb2_grpc.TransactionManagerServiceAsyncStub, n: int) -> None:
        started = time.monotonic()
        try:
            resp = await stub.Submit(
                tm_pb2.SubmitRequest(gid=f"{self._prefix}{n}", steps=self._steps, wait_result=True),
                timeout=120,
            )
        except grpc.aio.AioRpcError:
            self.failed += 1
            return
        if resp.transaction.status != tm_pb2.TRANSACTION_STATUS_SUCCEEDED:
            self.failed += 1
            return
        self.latencies.append(time.monotonic() - started)

    async def run(self, stop: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(self._target) as channel:
            stub: tm_pb2_grpc.TransactionManagerServiceAsyncStub = (
                tm_pb2_grpc.TransactionManagerServiceStub(channel)
            )
            start = time.monotonic()
            n = 0
            while not stop.is_set():
                n += 1
                task = asyncio.create_task(self._one(stub, n))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                next_at = start + n / self._rate
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            if self._tasks:
                await asyncio.gather(*self._tasks)

    def summary(self) -> dict[str, Any]:
        ms = sorted(x * 1000 for x in self.latencies)
        if not ms:
            return {"count": 0, "failed": self.failed, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        return {
            "count": len(ms),
            "failed": self.failed,
            "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "max_ms": round(ms[-1], 2),
        }


async def _backlog_left(conn: asyncpg.Connection, prefix: str) -> int:
    # The due index serves this: active jobs only, a few thousand at most to count.
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM stepping_transactions WHERE status = ANY($1::int2[])"
            " AND gid LIKE $2",
            [int(TxStatus.SUBMITTED), int(TxStatus.PREPARED), int(TxStatus.COMPENSATING)],
            prefix + "%",
        )
    )


async def run_drain(
    sc: DrainScenario,
    *,
    pg: PgServer,
    participants: list[tuple[Child, int]],
    steps: int,
    payload_size: int,
    run_dir: Path,
    db_prefix: str,
    tm_env: dict[str, str],
    index: int,
) -> DrainResult:
    db = f"{db_prefix}_tm"
    tag = f"{index}-drain"
    await pg.recreate(db)
    await migrate_tm(pg.url(db), run_dir / f"{tag}-migrate.log")
    targets = [f"127.0.0.1:{port}" for _, port in participants[:steps]]
    prefix = f"backlog-{secrets.token_hex(3)}-"
    load_s = await load_backlog(
        pg.url(db), jobs=sc.jobs, targets=targets, payload=b"x" * payload_size, gid_prefix=prefix
    )
    print(f"bench:   loaded {sc.jobs} due jobs in {load_s:.1f}s", flush=True)
    env = {"STEPPING_MIGRATE_ON_START": "false", **tm_env}
    tm, target = await start_tm(
        database_url=pg.url(db), workers=sc.workers, log=run_dir / f"{tag}.log", tm_env=env
    )
    fresh = _Fresh(target, [(t, METHOD) for t in targets], sc.fresh_rate)
    stop = asyncio.Event()
    conn = await asyncpg.connect(pg.url(db))
    curve: list[tuple[float, int]] = []
    rss: list[float] = []
    try:
        started = time.monotonic()
        fresh_task = asyncio.create_task(fresh.run(stop))
        while True:
            left = await _backlog_left(conn, prefix)
            elapsed = time.monotonic() - started
            curve.append((round(elapsed, 1), left))
            rss.append(_rss_mib(tm.pid))
            if left == 0:
                break
            if elapsed > sc.timeout or tm.proc.returncode is not None:
                raise RuntimeError(f"drain did not finish: {left} left after {elapsed:.0f}s")
            await asyncio.sleep(1.0)
        drain_s = time.monotonic() - started
        stop.set()
        await fresh_task
        succeeded = int(
            await conn.fetchval(
                "SELECT count(*) FROM stepping_transactions WHERE status = $1 AND gid LIKE $2",
                int(TxStatus.SUCCEEDED),
                prefix + "%",
            )
        )
    finally:
        stop.set()
        await conn.close()
        await tm.stop(timeout=30)
    return DrainResult(
        name=sc.name,
        jobs=sc.jobs,
        workers=sc.workers,
        load_seconds=load_s,
        drain_seconds=drain_s,
        jobs_per_second=sc.jobs / drain_s,
        succeeded=succeeded,
        fresh=fresh.summary(),
        tm_rss_mib_max=max(rss),
        tm_rss_mib_last=rss[-1],
        curve=curve,
        settings=dict(tm_env),
    )
