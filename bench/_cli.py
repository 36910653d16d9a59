"""``python -m bench``: the command line, parsed into ``_options.Options`` and its scenarios."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench._loadgen import LoadShape
from bench._options import DrainScenario, Options, Scenario

__all__ = ["main", "parse_args", "parse_drain", "parse_scale", "parse_scenario"]

DESCRIPTION = """\
Benchmark of the Stepping TM, in the load shape of issue #6: the TM (stepping-tm serve),
one participant process per step (a grpc.aio server answering OK) and ONE load process
offering Submit(wait_result) jobs of K steps, closed loop at a concurrency on one channel
or open loop at a rate; then DBOS Transact workflows of K no-op steps on the same
Postgres, and the ratio. Reports jobs/s, steps/s, latency percentiles, CPU per job of
each process (TM, participants, load, Postgres) and Postgres commits, row writes and WAL
per job, as a table and (--json) as JSON.
"""

SCENARIO_HELP = """\
a scenario, repeatable: MODE[:key=value,...] with MODE closed or open and keys
c (concurrency), rate, workers, channels, arrivals (poisson|fixed); e.g. 'closed',
'open:rate=50', 'closed:c=64,workers=2'. Unset keys come from the other options.
MODE drain (issue 16): N due jobs bulk-loaded, then drained by the TM while fresh
jobs arrive; keys jobs (100000), workers, fresh (jobs/s, 20), timeout (s); e.g.
'drain:jobs=100000,workers=2'. MODE scale (issue 16): N finished jobs bulk-loaded,
then List (every filter), Count, Get, Submit(wait_result) and the sweeper's claim timed
with their plans, and a purge; key rows (1000000), e.g. 'scale:rows=1000000'.
DBOS runs only with a closed or open scenario.
"""


def _channels_for(workers: int, channels: int | None) -> int:
    # One channel is one connection, and SO_REUSEPORT spreads connections (by a hash of
    # the address pair), not calls: with N TM processes, 32 connections per process
    # split the jobs evenly enough (the report shows each worker's share of the CPU).
    if channels is not None:
        return channels
    return 1 if workers == 1 else 32 * workers


def parse_drain(spec: str, workers: int) -> DrainScenario:
    _, _, rest = spec.partition(":")
    sc = DrainScenario(workers=workers)
    keys = {"jobs": "jobs", "workers": "workers", "fresh": "fresh_rate", "timeout": "timeout"}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in keys:
            raise ValueError(f"scenario {spec!r}: expected one of {', '.join(keys)}=VALUE")
        number: float = float(value) if key in ("fresh", "timeout") else int(value)
        sc = replace(sc, **{keys[key]: number})  # type: ignore[arg-type]
    if sc.jobs < 1 or sc.workers < 1 or sc.fresh_rate <= 0:
        raise ValueError(f"scenario {spec!r}: jobs, workers and fresh must be positive")
    return sc


def parse_scale(spec: str) -> int:
    """``scale:rows=N``: the number of finished jobs to load."""
    _, _, rest = spec.partition(":")
    rows = 1_000_000
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key != "rows":
            raise ValueError(f"scenario {spec!r}: expected rows=N")
        rows = int(value)
    if rows < 100:
        raise ValueError(f"scenario {spec!r}: rows must be at least 100")
    return rows


def parse_scenario(spec: str, base: LoadShape, workers: int, channels: int | None) -> Scenario:
    mode, _, rest = spec.partition(":")
    if mode not in ("closed", "open"):
        raise ValueError(f"scenario {spec!r}: mode must be closed or open")
    shape = replace(base, mode=mode)
    w, ch = workers, channels
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"scenario {spec!r}: expected key=value, got {item!r}")
        if key in ("c", "concurrency"):
            shape = replace(shape, concurrency=int(value))
        elif key == "rate":
            shape = replace(shape, rate=float(value))
        elif key == "arrivals":
            shape = replace(shape, arrivals=value)
        elif key == "workers":
            w = int(value)
        elif key == "channels":
            ch = int(value)
        else:
            raise ValueError(f"scenario {spec!r}: unknown key {key!r}")
    if shape.arrivals not in ("poisson", "fixed"):
        raise ValueError(f"scenario {spec!r}: arrivals must be poisson or fixed")
    return Scenario(shape, w, _channels_for(w, ch))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--database-url",
        help="a Postgres server (postgresql://user@host:port/db); the bench creates and "
        "drops its own databases there (needs CREATEDB). Default: an embedded Postgres "
        "in a temp dir, default durability (fsync on, synchronous_commit on)",
    )
    p.add_argument("--steps", type=int, default=3, help="steps per job (K), default 3")
    p.add_argument("--concurrency", "-c", type=int, default=64, help="closed loop: jobs in flight")
    p.add_argument("--rate", type=float, help="open loop at this many jobs/s (else closed loop)")
    p.add_argument("--arrivals", choices=("poisson", "fixed"), default="poisson")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds (60)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (5)")
    p.add_argument("--workers", type=int, default=1, help="TM processes (serve --workers)")
    p.add_argument(
        "--channels",
        type=int,
        help="client channels (connections); default 1, or 32 per TM worker when --workers > 1",
    )
    p.add_argument("--scenario", action="append", default=[], metavar="SPEC", help=SCENARIO_HELP)
    p.add_argument(
        "--suite",
        action="store_true",
        help="the issue #6 set: closed loop, open loop at 50/s, closed loop with --workers 2",
    )
    p.add_argument(
        "--tm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the TM scenarios (--no-tm: only DBOS)",
    )
    p.add_argument(
        "--dbos",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run DBOS Transact workflows of K no-op steps (closed loop, same concurrency)",
    )
    p.add_argument("--dbos-duration", type=float, help="DBOS measured seconds (default 20)")
    p.add_argument(
        "--dbos-mode",
        choices=("async", "threads"),
        default="async",
        help="DBOS workflows as coroutines (async, default) or in a thread pool",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the TM during each window")
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s (100)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--run-dir", type=Path, help="logs, records, profiles (default: a temp dir)")
    p.add_argument(
        "--tm-env",
        action="append",
        default=[],
        metavar="KEY=VAL",
        help="environment for the TM, e.g. STEPPING_DB_POOL_SIZE=20 (repeatable)",
    )
    p.add_argument("--payload-size", type=int, default=16, help="bytes per step payload (16)")
    p.add_argument("--db-prefix", default="stepping_bench", help="names of the bench databases")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="CI: a few jobs per scenario (closed + open loop, DBOS), short windows",
    )
    p.add_argument("--keep", action="store_true", help="keep the databases after the run")
    p.add_argument(
        "--participants",
        choices=("python", "go"),
        default="python",
        help="the minimal participant processes: grpc.aio (python, default) or grpc-go "
        "(go: bench/participant_go, built with the Go toolchain scripts/install-stub-"
        "toolchains installs); go costs the machine less per call, leaving more to the TM",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.steps < 1:
        parser.error("--steps must be at least 1")
    if not a.tm and not a.dbos:
        parser.error("--no-tm --no-dbos leaves nothing to run")
    duration, warmup, dbos_duration = a.duration, a.warmup, a.dbos_duration or 20.0
    concurrency = a.concurrency
    if a.smoke:
        duration, warmup, dbos_duration = 2.0, 0.5, 2.0
        concurrency = min(concurrency, 8)
    base = LoadShape(
        mode="open" if a.rate else "closed",
        concurrency=concurrency,
        rate=a.rate or 50.0,
        arrivals=a.arrivals,
        warmup=warmup,
        duration=duration,
    )
    specs: list[str] = list(a.scenario)
    if a.suite:
        specs += ["closed", "open:rate=50", "closed:workers=2"]
    if a.smoke and not specs:
        specs = ["closed", "open:rate=20"]
    drain_specs = [s for s in specs if s.partition(":")[0] == "drain"]
    scale_specs = [s for s in specs if s.partition(":")[0] == "scale"]
    specs = [s for s in specs if s not in drain_specs and s not in scale_specs]
    try:
        drains = [parse_drain(s, a.workers) for s in drain_specs]
        scales = [parse_scale(s) for s in scale_specs]
        scenarios = [parse_scenario(s, base, a.workers, a.channels) for s in specs]
        if not scenarios and not drains and not scales:
            scenarios = [Scenario(base, a.workers, _channels_for(a.workers, a.channels))]
    except ValueError as err:
        parser.error(str(err))
    tm_env: dict[str, str] = {}
    for item in a.tm_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--tm-env expects KEY=VAL, got {item!r}")
        tm_env[key] = value
    return Options(
        database_url=a.database_url,
        steps=a.steps,
        scenarios=scenarios if a.tm else [],
        dbos=a.dbos and bool(scenarios),
        drains=drains if a.tm else [],
        scales=scales if a.tm else [],
        dbos_shape=replace(base, mode="closed", duration=dbos_duration),
        dbos_mode=a.dbos_mode,
        profile=a.profile,
        profile_rate=a.profile_rate,
        json_path=a.json,
        run_dir=a.run_dir,
        tm_env=tm_env,
        payload_size=a.payload_size,
        db_prefix=a.db_prefix,
        smoke=a.smoke,
        keep=a.keep,
        participants=a.participants,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    # Imported here, not at the top: the run pulls in grpc, SQLAlchemy and DBOS (seconds),
    # which --help and a mistyped option should not wait for.
    from bench._run import BenchError, run_all

    try:
        return asyncio.run(run_all(options))
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
