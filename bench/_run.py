"""One benchmark run: Postgres, participants, each TM scenario, DBOS, the report.

A scenario's timeline (the load process's clock is the system's monotonic clock):

    schema migrated → Postgres snapshot A → system starts → load starts (t0) → warmup
    → CPU sample 1 [py-spy starts] → duration → CPU sample 2 → load stops, jobs in
    flight finish → system stops, its backends exit → Postgres snapshot B

Throughput, latency and CPU per job come from the window between the CPU samples
(jobs that *finished* in it); Postgres counters from A..B divided by every job of the
run (see ``_pgstats`` for why).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import _cpu
from bench._client import ClientConfig
from bench._dbos_run import DbosConfig
from bench._drain import DrainResult, run_drain
from bench._loadgen import LoadShape
from bench._machine import machine_info
from bench._options import Options, Scenario
from bench._participant import METHOD
from bench._pgstats import PgServer
from bench._procs import (
    BenchError,
    Child,
    LoadProcess,
    migrate_tm,
    run_once,
    start_participants,
    start_tm,
)
from bench._profile import Profiler
from bench._records import Records, WindowStats
from bench._report import Report, ScenarioResult

__all__ = ["BenchError", "run_all"]


@dataclass
class _CpuSample:
    at: float
    stats: dict[int, _cpu.ProcStat]

    @classmethod
    def take(cls) -> _CpuSample:
        start = time.monotonic()
        stats = _cpu.read_all()  # a few ms: the sample is taken at the middle
        return cls((start + time.monotonic()) / 2, stats)


@dataclass
class _Groups:
    """The process trees whose CPU is reported, by role."""

    roots: dict[str, list[int]] = field(default_factory=dict)

    def _seconds(self, a: _CpuSample, b: _CpuSample, roots: list[int]) -> float | None:
        before = _cpu.tree_cpu_seconds(a.stats, roots)
        after = _cpu.tree_cpu_seconds(b.stats, roots)
        return None if before is None or after is None else after - before

    def cpu_ms_per_job(self, a: _CpuSample, b: _CpuSample, jobs: int) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for role, roots in self.roots.items():
            used = self._seconds(a, b, roots)
            out[role] = None if used is None or jobs == 0 else used * 1000.0 / jobs
        return out

    def cores(self, a: _CpuSample, b: _CpuSample) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for role, roots in self.roots.items():
            used = self._seconds(a, b, roots)
            out[role] = None if used is None else used / (b.at - a.at)
        return out


def _per_process_cpu(a: _CpuSample, b: _CpuSample, root: int) -> dict[str, float]:
    """CPU seconds in the window of each process of one tree (e.g. the TM's workers)."""
    out: dict[str, float] = {}
    for pid, st in b.stats.items():
        p = pid
        while p != root and p in b.stats and p > 1:
            p = b.stats[p].ppid
        if p == root:
            before = a.stats[pid].cpu if pid in a.stats else 0.0
            out[str(pid)] = round(st.cpu - before, 3)
    return out


async def _measure(
    load: LoadProcess,
    shape: LoadShape,
    *,
    profile: tuple[int, Path, int] | None,
) -> tuple[_CpuSample, _CpuSample, dict[str, Any], dict[str, Any] | None]:
    t0 = await load.go()
    await asyncio.sleep(max(0.0, t0 + shape.warmup - time.monotonic()))
    first = _CpuSample.take()
    profiler = None
    if profile is not None:
        pid, out, rate = profile
        profiler = await Profiler.start(pid, shape.duration, out, rate)
    await asyncio.sleep(max(0.0, t0 + shape.warmup + shape.duration - time.monotonic()))
    second = _CpuSample.take()
    summary = await load.done(shape.drain_timeout + 60)
    profiled = await profiler.finish() if profiler is not None else None
    return first, second, summary, profiled


def _result(
    *,
    name: str,
    system: str,
    shape: LoadShape,
    steps: int,
    records: Records,
    first: _CpuSample,
    second: _CpuSample,
    groups: _Groups,
    pg: dict[str, Any],
    load: dict[str, Any],
    workers: int = 1,
    channels: int = 1,
    profile: dict[str, Any] | None = None,
    processes: dict[str, float] | None = None,
) -> ScenarioResult:
    window: WindowStats = records.window(first.at, second.at)
    finished = window.jobs + window.failures
    return ScenarioResult(
        name=name,
        system=system,
        shape=shape,
        steps=steps,
        workers=workers,
        channels=channels,
        window=window,
        jobs_total=len(records),
        failures_total=records.failures(),
        cpu_ms_per_job=groups.cpu_ms_per_job(first, second, finished),
        cpu_cores=groups.cores(first, second),
        engine_processes=processes or {},
        pg=pg,
        load=load,
        profile=profile,
    )


async def _run_tm(
    opts: Options,
    sc: Scenario,
    *,
    pg: PgServer,
    participants: list[tuple[Child, int]],
    run_dir: Path,
    index: int,
) -> ScenarioResult:
    db = f"{opts.db_prefix}_tm"
    tag = f"{index}-tm"
    await pg.recreate(db)
    await migrate_tm(pg.url(db), run_dir / f"{tag}-migrate.log")
    monitor = await pg.monitor(db)
    try:
        await pg.wait_idle(db)
        before = await monitor.snapshot()
        tm, target = await start_tm(
            database_url=pg.url(db),
            workers=sc.workers,
            log=run_dir / f"{tag}.log",
            tm_env={"STEPPING_MIGRATE_ON_START": "false", **opts.tm_env},
        )
        try:
            records_path = run_dir / f"{tag}.records"
            config = ClientConfig(
                target=target,
                steps=[(f"127.0.0.1:{port}", METHOD) for _, port in participants[: opts.steps]],
                records_path=str(records_path),
                gid_prefix=f"b{int(time.time()):x}{secrets.token_hex(3)}-",
                shape=sc.shape,
                channels=sc.channels,
                payload_size=opts.payload_size,
            )
            load = await LoadProcess.start(
                "client", "bench._client", config.to_json(), run_dir / f"{tag}-client.log"
            )
            groups = _Groups(
                {
                    "tm": [tm.pid],
                    "participants": [c.pid for c, _ in participants[: opts.steps]],
                    "load": [load.child.pid],
                    **pg.cpu_roots(),
                }
            )
            profile = (tm.pid, run_dir / f"{tag}.pyspy.txt", opts.profile_rate)
            first, second, summary, profiled = await _measure(
                load, sc.shape, profile=profile if opts.profile else None
            )
            await load.exit()
            if problem := _tm_problem(tm):
                summary["tm_problem"] = problem
                print(f"bench:   WARNING: {problem}", flush=True)
        finally:
            await tm.stop(timeout=30)
        await pg.wait_idle(db)
        after = await monitor.snapshot()
    finally:
        await monitor.close()
    records = Records.load(records_path)
    return _result(
        name=sc.name,
        system="tm",
        shape=sc.shape,
        steps=opts.steps,
        records=records,
        first=first,
        second=second,
        groups=groups,
        pg=before.delta_to(after).per_job(len(records)),
        load=summary,
        workers=sc.workers,
        channels=sc.channels,
        profile=profiled,
        processes=_per_process_cpu(first, second, tm.pid),
    )


def _tm_problem(tm: Child) -> str | None:
    """Did the TM exit, or start shutting down, before the bench stopped it?"""
    if tm.proc.returncode is not None:
        return f"the TM exited during the run (code {tm.proc.returncode}); see {tm.log}"
    if "stopping (grace" in tm.log_tail(1 << 20):
        return f"the TM got a stop signal from outside the bench during the run; see {tm.log}"
    return None


async def _run_dbos(opts: Options, pg: PgServer, run_dir: Path) -> ScenarioResult:
    db = f"{opts.db_prefix}_dbos"
    await pg.recreate(db)
    records_path = run_dir / "dbos.records"
    config = DbosConfig(
        database_url=pg.url(db),
        steps=opts.steps,
        records_path=str(records_path),
        shape=opts.dbos_shape,
        mode=opts.dbos_mode,
    )
    # DBOS creates its schema at launch: done by a process of its own, before counting.
    await run_once(
        "dbos-migrate",
        ["-m", "bench._dbos_run", replace(config, migrate_only=True).to_json()],
        run_dir / "dbos-migrate.log",
    )
    monitor = await pg.monitor(db)
    try:
        await pg.wait_idle(db)
        before = await monitor.snapshot()
        load = await LoadProcess.start(
            "dbos", "bench._dbos_run", config.to_json(), run_dir / "dbos.log", ready_timeout=120
        )
        try:
            groups = _Groups({"engine": [load.child.pid], **pg.cpu_roots()})
            first, second, summary, _ = await _measure(load, opts.dbos_shape, profile=None)
            await load.exit()
        finally:
            await load.child.stop()
        await pg.wait_idle(db)
        after = await monitor.snapshot()
    finally:
        await monitor.close()
    records = Records.load(records_path)
    s = opts.dbos_shape
    return _result(
        name=f"DBOS closed c={s.concurrency}",
        system="dbos",
        shape=s,
        steps=opts.steps,
        records=records,
        first=first,
        second=second,
        groups=groups,
        pg=before.delta_to(after).per_job(len(records)),
        load=summary,
    )


def _print_result(r: ScenarioResult) -> None:
    print(f"bench:   {r.one_line()}", flush=True)
    if r.failures_total:
        print(f"bench:   FAILED JOBS, most common errors: {r.load.get('errors')}", flush=True)


async def _run_scale(opts: Options, pg: PgServer, rows: int) -> dict[str, Any]:
    """``bench.scale_list`` on a fresh database of this server (fsync as the server has it)."""
    from bench import scale_list

    db = f"{opts.db_prefix}_scale"
    await pg.recreate(db)
    args = argparse.Namespace(
        database_url=pg.url(db),
        rows=rows,
        repeat=3 if opts.smoke else 20,
        purge_rows=max(1, min(100_000, rows // 10)),
    )
    try:
        report: dict[str, Any] = await scale_list.run(args)
    finally:
        if not opts.keep:
            await pg.drop(db)
    return report


async def run_all(opts: Options) -> int:
    """Run every scenario, print the table, write the JSON; 0 when every job succeeded."""
    run_dir = opts.run_dir or Path(tempfile.mkdtemp(prefix="stepping-bench-", dir="/var/tmp"))
    run_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(f"bench: run directory {run_dir}", flush=True)
    pg = await asyncio.to_thread(PgServer.start, opts.database_url)
    participants: list[tuple[Child, int]] = []
    results: list[ScenarioResult] = []
    drains: list[DrainResult] = []
    scales: list[dict[str, Any]] = []
    pg_info: dict[str, Any] = {}
    try:
        pg_info = await pg.info()
        what = "embedded, fsync on" if pg.embedded else "given by --database-url"
        print(f"bench: Postgres {pg_info['version'].split(' on ')[0]} ({what})", flush=True)
        print(f"bench: participants: {opts.participants}", flush=True)
        participants = await start_participants(opts.steps, run_dir, opts.participants)
        for i, sc in enumerate(opts.scenarios):
            print(f"bench: {sc.name}: {sc.shape.warmup:g}s warmup + {sc.shape.duration:g}s ...")
            results.append(
                await _run_tm(opts, sc, pg=pg, participants=participants, run_dir=run_dir, index=i)
            )
            _print_result(results[-1])
        for i, dr in enumerate(opts.drains):
            print(f"bench: {dr.name} ...", flush=True)
            drains.append(
                await run_drain(
                    dr,
                    pg=pg,
                    participants=participants,
                    steps=opts.steps,
                    payload_size=opts.payload_size,
                    run_dir=run_dir,
                    db_prefix=opts.db_prefix,
                    tm_env=opts.tm_env,
                    index=len(opts.scenarios) + i,
                )
            )
            print(f"bench:   {drains[-1].one_line()}", flush=True)
        for rows in opts.scales:
            print(f"bench: TM at scale, {rows:,} finished jobs ...", flush=True)
            scales.append(await _run_scale(opts, pg, rows))
        if opts.dbos:
            print(f"bench: DBOS ({opts.dbos_mode}): {opts.dbos_shape.duration:g}s ...")
            results.append(await _run_dbos(opts, pg, run_dir))
            _print_result(results[-1])
    finally:
        for child, _ in participants:
            await child.stop()
        if not opts.keep:
            with contextlib.suppress(Exception):
                await pg.drop(f"{opts.db_prefix}_tm")
                await pg.drop(f"{opts.db_prefix}_dbos")
        await asyncio.to_thread(pg.stop)
    machine["load_average_after"] = machine_info()["load_average"]
    report = Report(
        opts=opts, machine=machine, postgres=pg_info, results=results, drains=drains, scales=scales
    )
    print()
    print(report.table())
    if opts.json_path is not None:
        opts.json_path.parent.mkdir(parents=True, exist_ok=True)
        opts.json_path.write_text(report.to_json())
        print(f"\nbench: JSON written to {opts.json_path}")
    ok = all(r.failures_total == 0 for r in results) and all(
        d.fresh["failed"] == 0 and d.succeeded == d.jobs for d in drains
    )
    return 0 if ok else 1
