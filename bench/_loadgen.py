"""Load shapes (closed and open loop) and the protocol of a load process.

A load process (the TM client, the DBOS runner) is started by the orchestrator with
one JSON argument. It sets up, prints ``READY``, waits for ``go`` on stdin, prints
``START <t0>`` (monotonic clock), runs ``warmup + duration`` seconds of load, lets the
jobs in flight finish, saves its records, prints ``DONE <json summary>`` and exits at
the next line (or EOF) on stdin.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench._records import OK, RPC_ERROR, Records

__all__ = ["JobFn", "LoadShape", "announce", "loop_name", "run", "run_load", "serve_load"]

# One job: its index in, its outcome (OK, WRONG_RESULT, RPC_ERROR) out. It must not
# raise for a failed job: it reports it (and may note the error in ``errors``).
JobFn = Callable[[int], Awaitable[int]]


@dataclass(frozen=True)
class LoadShape:
    """How jobs are offered: ``closed`` (concurrency) or ``open`` (rate)."""

    mode: str = "closed"
    concurrency: int = 64
    rate: float = 50.0
    arrivals: str = "poisson"  # open loop: "poisson" or "fixed" inter-arrival times
    warmup: float = 5.0
    duration: float = 60.0
    drain_timeout: float = 40.0
    seed: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is there (as the TM does), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: the running loop's kind, for the report."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def announce(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _closed(
    job: JobFn, shape: LoadShape, rec: Records, stop_at: float
) -> set[asyncio.Task[None]]:
    counter = iter(range(sys.maxsize))

    async def worker() -> None:
        while True:
            start = time.monotonic()
            if start >= stop_at:
                return
            try:
                outcome = await job(next(counter))
            except asyncio.CancelledError:
                rec.add(start, time.monotonic(), RPC_ERROR)
                raise
            rec.add(start, time.monotonic(), outcome)

    return {asyncio.create_task(worker()) for _ in range(shape.concurrency)}


async def _open(
    job: JobFn, shape: LoadShape, rec: Records, t0: float, stop_at: float
) -> set[asyncio.Task[None]]:
    rng = random.Random(shape.seed)
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, scheduled: float) -> None:
        try:
            outcome = await job(index)
        except asyncio.CancelledError:
            rec.add(scheduled, time.monotonic(), RPC_ERROR)
            raise
        rec.add(scheduled, time.monotonic(), outcome)

    scheduled = t0
    index = 0
    while True:
        gap = rng.expovariate(shape.rate) if shape.arrivals == "poisson" else 1.0 / shape.rate
        scheduled += gap
        if scheduled >= stop_at:
            return tasks
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1


async def run_load(job: JobFn, shape: LoadShape, rec: Records, errors: Counter[str]) -> float:
    """Offer load for ``warmup + duration`` seconds from now; returns the start time.

    Jobs still unfinished ``drain_timeout`` seconds after the end are cancelled and
    recorded as failures, not lost.
    """
    t0 = time.monotonic()
    announce(f"START {t0!r}")
    stop_at = t0 + shape.warmup + shape.duration
    if shape.mode == "closed":
        tasks = await _closed(job, shape, rec, stop_at)
        timeout = stop_at + shape.drain_timeout - time.monotonic()
    else:
        tasks = set(await _open(job, shape, rec, t0, stop_at))
        timeout = shape.drain_timeout
    late: set[asyncio.Task[None]] = set()
    if tasks:
        _done, late = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
    for task in late:
        task.cancel()
    if late:
        errors[f"unfinished {shape.drain_timeout:g}s after the end; cancelled"] += len(late)
    await asyncio.gather(*late, return_exceptions=True)
    return t0


async def serve_load(
    job: JobFn, shape: LoadShape, records_path: str, errors: Counter[str], info: dict[str, Any]
) -> None:
    """The load process's protocol around ``run_load`` (see the module docstring)."""
    announce("READY")
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit("load process: expected 'go' on stdin")
    rec = Records()
    t0 = await run_load(job, shape, rec, errors)
    rec.save(Path(records_path))
    summary = {
        "t0": t0,
        "jobs": len(rec),
        "ok": sum(1 for o in rec.outcome if o == OK),
        "failures": rec.failures(),
        "errors": dict(errors.most_common(5)),
        "loop": loop_name(),
        **info,
    }
    announce("DONE " + json.dumps(summary))
    # Stay alive (and measurable) until the orchestrator has taken its samples.
    await asyncio.to_thread(sys.stdin.readline)
