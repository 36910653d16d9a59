"""One chaos run, start to end: set up, load under chaos, settle, drain, check, report.

The system: its own Postgres cluster; ``cfg.replicas`` TM processes (``stepping-tm
serve``) sharing one database, replica 0 through the cuttable proxy; two banks and the
orders service's back-check, each a process on its own database. The load runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.chaos._chaos import ChaosMonkey
from bench.chaos._check import check, read_snapshot
from bench.chaos._config import ChaosConfig
from bench.chaos._load import LoadGenerator, Recorder, as_interceptor
from bench.chaos._participant import CRASH_EXIT_CODE
from bench.chaos._postgres import ChaosPostgres
from bench.chaos._procs import (
    ChaosError,
    Launch,
    ManagedProcess,
    free_port,
    python_command,
    tm_command,
)
from bench.chaos._proxy import CutProxy
from bench.chaos._report import ChaosReport, count
from bench.chaos._schema import create_bank_schema, create_orders_schema
from participant_sdk import Endpoint, TmClient

__all__ = ["run_chaos"]

_log = logging.getLogger("bench.chaos")

_TM_DB, _ORDERS_DB = "chaos_tm", "chaos_orders"
_BANKS = {"bank_a": "a", "bank_b": "b"}  # bank (and its database) → account prefix
_START_TIMEOUT = 90.0
_FAULT_LINE = re.compile(rb"^FAULT (\w+) ", re.MULTILINE)


async def run_chaos(cfg: ChaosConfig) -> ChaosReport:
    """Runs the chaos suite once; raises ChaosError if the system could not be run."""
    run_dir = cfg.run_dir or Path(tempfile.mkdtemp(prefix="stepping-chaos-", dir="/var/tmp"))
    run_dir.mkdir(parents=True, exist_ok=True)
    sdk_log = logging.getLogger("participant_sdk")
    level = sdk_log.level
    # The SDK warns at every Submit a "dead" client did not send; the report counts them.
    sdk_log.setLevel(logging.ERROR)
    run = _Run(cfg, run_dir)
    report: ChaosReport | None = None
    try:
        async with asyncio.timeout(cfg.max_seconds):
            report = await run.execute()
    except TimeoutError:
        raise ChaosError(f"the run exceeded --max-seconds {cfg.max_seconds:g}") from None
    finally:
        sdk_log.setLevel(level)
        await run.close()
        if report is not None and report.ok and cfg.run_dir is None and not cfg.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return report


class _Run:
    def __init__(self, cfg: ChaosConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.pg = ChaosPostgres(fsync=cfg.pg_fsync)
        self.proxy = CutProxy("127.0.0.1", self.pg.port)
        self.recorder = Recorder()
        self.tms: list[ManagedProcess] = []
        self.participants: list[ManagedProcess] = []
        self.clients: list[TmClient] = []
        self.orders_engine: AsyncEngine | None = None
        self.monkey: ChaosMonkey | None = None
        self.timings: dict[str, float] = {}
        self.accounts = {
            bank: [f"{prefix}{i}" for i in range(cfg.accounts_per_bank)]
            for bank, prefix in _BANKS.items()
        }

    # -- the phases ---------------------------------------------------------------
    async def execute(self) -> ChaosReport:
        cfg = self.cfg
        t_start = time.monotonic()
        await self._setup()
        t_load = time.monotonic()
        self.timings["setup"] = t_load - t_start
        assert self.orders_engine is not None
        banks = {p.name: p.target for p in self.participants if p.name in _BANKS}
        load = LoadGenerator(
            cfg, self.clients, self.recorder, self.orders_engine, banks, self.accounts
        )
        monkey = self.monkey = ChaosMonkey(cfg, self.tms, self.participants, self.pg, self.proxy)
        stop, unwatch = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(monkey.watch(unwatch))
        chaos = asyncio.create_task(monkey.run(t_load, stop))
        try:
            try:
                await load.run(deadline=t_load + cfg.window * 2 + 60, more=lambda: monkey.pending)
            finally:
                stop.set()
                await chaos
            t_settle = time.monotonic()
            self.timings["load"] = t_settle - t_load
            await monkey.settle()
            t_drain = time.monotonic()
            self.timings["settle"] = t_drain - t_settle
            open_jobs = await self._drain()
        finally:
            unwatch.set()
            await watcher
        t_check = time.monotonic()
        self.timings["drain"] = t_check - t_drain
        snap = await read_snapshot(
            self.pg.dsn(_TM_DB),
            {bank: self.pg.dsn(bank) for bank in _BANKS},
            self.pg.dsn(_ORDERS_DB),
        )
        opening = {
            (bank, account): cfg.initial_balance
            for bank, names in self.accounts.items()
            for account in names
        }
        invariants = check(snap, load.records, self.recorder, opening)
        self.timings["check"] = time.monotonic() - t_check
        self.timings["wall"] = time.monotonic() - t_start
        return self._report(load, monkey, snap.jobs, invariants, open_jobs)

    async def _setup(self) -> None:
        cfg = self.cfg
        await self.pg.start()
        await self.pg.create_databases(_TM_DB, _ORDERS_DB, *_BANKS)
        await self._migrate_tm()
        for bank, names in self.accounts.items():
            engine = create_async_engine(self.pg.url(bank))
            try:
                await create_bank_schema(engine, dict.fromkeys(names, cfg.initial_balance))
            finally:
                await engine.dispose()
        self.orders_engine = create_async_engine(
            self.pg.url(_ORDERS_DB),
            pool_size=16,
            max_overflow=cfg.max_in_flight,
            pool_pre_ping=True,
        )
        await create_orders_schema(self.orders_engine)
        await self.proxy.start()
        self.tms = [self._tm(i) for i in range(cfg.replicas)]
        self.participants = [self._participant(bank, "bank") for bank in _BANKS]
        self.participants.append(self._participant(_ORDERS_DB, "orders"))
        await asyncio.gather(*(p.start(_START_TIMEOUT) for p in (*self.tms, *self.participants)))
        orders_target = next(p.target for p in self.participants if p.name == _ORDERS_DB)
        for tm in self.tms:
            self.clients.append(
                await TmClient.connect(
                    tm.target,
                    timeout=cfg.client_timeout,
                    query_prepared=Endpoint.query_prepared(orders_target),
                    interceptors=[as_interceptor(self.recorder)],
                    lazy=True,
                )
            )

    async def _migrate_tm(self) -> None:
        log = self.run_dir / "migrate.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *tm_command(),
                "db",
                "upgrade",
                "--database-url",
                self.pg.url(_TM_DB),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
            code = await asyncio.wait_for(proc.wait(), _START_TIMEOUT)
        if code != 0:
            raise ChaosError(f"stepping-tm db upgrade failed:\n{log.read_text()[-2000:]}")

    def _tm(self, index: int) -> ManagedProcess:
        port = free_port()
        # Replica 0 reaches its database through the proxy, which the chaos cuts.
        url = self.pg.url(_TM_DB, port=self.proxy.port if index == 0 else None)
        cfg = self.cfg

        def launch(incarnation: int) -> Launch:
            return Launch(
                [*tm_command(), "serve"],
                {
                    "STEPPING_LISTEN": f"127.0.0.1:{port}",
                    "STEPPING_DATABASE_URL": url,
                    "STEPPING_REPLICA_ID": f"chaos-tm{index}-{incarnation}",
                    "STEPPING_LEASE_SECONDS": str(cfg.lease_seconds),
                    "STEPPING_POLL_INTERVAL_SECONDS": "0.2",
                    "STEPPING_MIGRATE_ON_START": "false",
                    "STEPPING_DB_POOL_SIZE": "5",
                    "STEPPING_SHUTDOWN_GRACE_SECONDS": "1",
                    "STEPPING_LOG_LEVEL": "WARNING",
                },
            )

        return ManagedProcess(f"tm{index}", port, self.run_dir / f"tm{index}.log", launch)

    def _participant(self, database: str, role: str) -> ManagedProcess:
        port = free_port()
        argv = [
            *python_command("bench.chaos._participant"),
            role,
            "--port",
            str(port),
            "--db",
            self.pg.url(database),
        ]
        if role == "bank":
            argv += self.cfg.faults.to_args()
            if not self.cfg.barrier:
                argv.append("--no-barrier")
        spec = Launch(argv)
        return ManagedProcess(database, port, self.run_dir / f"{database}.log", lambda _n: spec)

    async def _drain(self) -> dict[str, int]:
        """Waits (bounded) until no job is left unfinished; returns what is left."""
        deadline = time.monotonic() + self.cfg.drain_seconds
        left: dict[str, int] = {}
        while True:
            try:
                conn = await asyncpg.connect(self.pg.dsn(_TM_DB))
                try:
                    rows = await conn.fetch(
                        "SELECT status, count(*) AS n FROM stepping_transactions"
                        " WHERE status IN (1, 2, 5) GROUP BY status"
                    )
                finally:
                    await conn.close()
                left = {str(r["status"]): int(r["n"]) for r in rows}
            except (OSError, asyncpg.PostgresError) as exc:
                _log.warning("drain: %s", exc)
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)

    # -- the report -----------------------------------------------------------------
    def _report(
        self,
        load: LoadGenerator,
        monkey: ChaosMonkey,
        stored: dict[str, str],
        invariants: list[Any],
        open_jobs: dict[str, int],
    ) -> ChaosReport:
        records = list(load.records.values())
        faults: Counter[str] = Counter()
        for p in self.participants:
            try:
                faults.update(m.decode() for m in _FAULT_LINE.findall(p.log.read_bytes()))
            except OSError:
                pass
        crashes = sum(
            1 for p in self.participants for code in p.unexpected_exits if code == CRASH_EXIT_CODE
        )
        others = sum(len(p.unexpected_exits) for p in (*self.tms, *self.participants)) - crashes
        codes = self.recorder.codes
        by_code: Counter[str] = Counter()
        for (_method, code), n in codes.items():
            by_code[code] += n
        notes = []
        if open_jobs:
            notes.append(f"drain ended with unfinished jobs (status: count) {open_jobs}")
        health = [e.note for e in monkey.events if e.kind == "health_during_outage"]
        if health:
            notes.append("TM health during outages: " + "; ".join(health))
        return ChaosReport(
            config=_config_json(self.cfg),
            invariants=invariants,
            jobs={
                "sent": len(records),
                "stored": len(stored),
                "by_kind": count([r.kind for r in records]),
                "by_variant": count([f"{r.kind}/{r.variant}" for r in records]),
                "final_status": count(list(stored.values())),
                "client_outcomes": count([r.outcome.split(":")[0] for r in records]),
            },
            chaos={
                "counts": dict(sorted(monkey.counts.items())),
                "crashes_after_commit": crashes,
                "unexpected_exits": others,
                "tm_start_failures": sum(t.start_failures for t in self.tms),
                "tm_incarnations": {t.name: t.incarnations for t in self.tms},
                "restart_seconds": _spread(monkey.restart_seconds),
                "step_faults": dict(sorted(faults.items())),
                "proxy": {
                    "connections": self.proxy.connections,
                    "refused_while_cut": self.proxy.refused,
                },
                "events": [e.to_json() for e in monkey.events],
            },
            clients={
                "codes_total": dict(sorted(by_code.items())),
                "codes": {f"{m} {c}": n for (m, c), n in sorted(codes.items())},
                "retries": load.client_retries,
                "max_attempts_used": load.max_attempts_used,
                "attempts_allowed": self.cfg.client_attempts,
                "gave_up": load.gave_up,
                "simulated_client_deaths": self.recorder.dropped,
            },
            timings={k: round(v, 2) for k, v in self.timings.items()},
            run_dir=str(self.run_dir),
            notes=notes,
        )

    async def close(self) -> None:
        if self.monkey is not None:
            await self.monkey.close()
        for client in self.clients:
            await client.close()
        await asyncio.gather(
            *(p.stop(5.0) for p in (*self.tms, *self.participants)), return_exceptions=True
        )
        await self.proxy.close()
        if self.orders_engine is not None:
            await self.orders_engine.dispose()
        await self.pg.stop()
        # The server's log joins the others; its data goes (unless kept, see --keep).
        with contextlib.suppress(OSError):
            shutil.copyfile(self.pg.log, self.run_dir / "postgres.log")
        if not self.cfg.keep:
            await self.pg.destroy()


def _spread(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per process: how many restarts, and their median and longest time to serve."""
    out = {}
    for name, values in sorted(samples.items()):
        ordered = sorted(values)
        out[name] = {
            "n": len(ordered),
            "median": round(ordered[len(ordered) // 2], 2),
            "max": round(ordered[-1], 2),
        }
    return out


def _config_json(cfg: ChaosConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out
