"""``python -m bench.chaos``: the command line of the chaos suite."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.chaos._config import PRESETS, ChaosConfig
from bench.chaos._procs import ChaosError
from bench.chaos._report import ChaosReport
from bench.chaos._run import run_chaos

__all__ = ["main", "parse_args"]

DESCRIPTION = """\
The chaos suite of the Stepping TM (issue #11). Starts its own Postgres cluster, TM
replicas (stepping-tm serve) sharing one database (replica 0 through a TCP proxy that it
cuts), two banks and an order service written with the participant SDK; offers saga
transfers and 2-phase orders while it SIGKILLs TMs and participants, restarts Postgres,
partitions a TM from the database and makes the banks fail before and after their
commits. Then it drains and checks: nothing lost, every job final, money conserved, each
effect exactly once, 2-phase committed <=> SUCCEEDED, no INTERNAL seen by clients.
Exit status 0 when every invariant holds, 1 when one does not, 2 when it could not run.
"""


def parse_args(argv: Sequence[str] | None = None) -> tuple[ChaosConfig, Path | None]:
    p = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="short",
        help="a starting point: short (CI, ~1 min), long (the README's run), no-barrier",
    )  # fmt: skip
    p.add_argument("--jobs", type=int, help="jobs to offer")
    p.add_argument("--rate", type=float, help="jobs offered per second")
    p.add_argument("--replicas", type=int, help="TM replicas (>= 2)")
    p.add_argument("--tm-kills", type=int, help="TM SIGKILLs")
    p.add_argument("--participant-kills", type=int, help="participant SIGKILLs")
    p.add_argument("--pg-restarts", type=int, help="Postgres restarts")
    p.add_argument("--proxy-cuts", type=int, help="partitions of TM 0 from the database")
    p.add_argument(
        "--no-barrier", action="store_true",
        help="fault injection: the banks skip the barrier (the money check must fail)",
    )  # fmt: skip
    p.add_argument("--before-commit", type=float, help="rate of step faults before commit")
    p.add_argument("--after-commit", type=float, help="rate of step faults after commit")
    p.add_argument("--crash-after-commit", type=float, help="rate of bank crashes after commit")
    p.add_argument("--pg-fsync", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--max-seconds", type=float, help="hard limit of the whole run")
    p.add_argument("--json", type=Path, dest="json_path", help="write the report as JSON here")
    p.add_argument("--run-dir", type=Path, help="keep the logs here (default: a temp dir, "
                   "removed when every invariant holds)")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    a = p.parse_args(argv)
    cfg = PRESETS[a.preset]
    simple = {
        "jobs": a.jobs,
        "rate": a.rate,
        "replicas": a.replicas,
        "tm_kills": a.tm_kills,
        "participant_kills": a.participant_kills,
        "pg_restarts": a.pg_restarts,
        "proxy_cuts": a.proxy_cuts,
        "pg_fsync": a.pg_fsync,
        "seed": a.seed,
        "max_seconds": a.max_seconds,
        "run_dir": a.run_dir,
    }
    cfg = replace(cfg, **{k: v for k, v in simple.items() if v is not None})
    if a.no_barrier:
        cfg = replace(cfg, barrier=False)
    if a.keep:
        cfg = replace(cfg, keep=True)
    faults = {
        "before_commit": a.before_commit,
        "after_commit": a.after_commit,
        "crash_after_commit": a.crash_after_commit,
    }
    faults = {k: v for k, v in faults.items() if v is not None}
    if faults:
        cfg = replace(cfg, faults=replace(cfg.faults, **faults))
    if cfg.replicas < 2:
        p.error("--replicas must be at least 2 (one is partitioned by the proxy)")
    return cfg, a.json_path


async def _run(cfg: ChaosConfig) -> ChaosReport:
    # SIGTERM (and SIGINT, also where a shell ignores it) cancels the run, whose cleanup
    # then stops every process it started (they are in their own sessions).
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await run_chaos(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    cfg, json_path = parse_args(argv)
    try:
        report = asyncio.run(_run(cfg))
    except ChaosError as exc:
        print(f"chaos: could not run: {exc}", file=sys.stderr)
        return 2
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("chaos: interrupted (every process it started is stopped)", file=sys.stderr)
        return 2
    print(report.summary())
    if not report.ok:
        print(f"logs: {report.run_dir}")
    if json_path is not None:
        report.write_json(json_path)
        print(f"JSON: {json_path}")
    return 0 if report.ok else 1
