"""The TM's metric instruments, and the due backlog read from the database off the hot path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["METRICS", "Backlog", "Instruments", "watch_backlog"]

_log = logging.getLogger(__name__)

# Seconds: from a fast local step call to a job that waited out long retries.
_STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

# name → (unit, description); the README's metrics table lists the same.
METRICS = {
    "stepping.jobs.started": ("{job}", "jobs accepted by Prepare or Submit"),
    "stepping.jobs.finished": ("{job}", "jobs that reached a final status"),
    "stepping.step.attempts": ("{attempt}", "calls to participants (steps, QueryPrepared)"),
    "stepping.step.duration": ("s", "duration of one call to a participant"),
    "stepping.job.duration": ("s", "from a job's creation (Submit or Prepare) to its end"),
    "stepping.jobs.due": ("{job}", "jobs due that no replica holds (the whole database)"),
    "stepping.jobs.oldest_due_age": ("s", "how long the oldest of those has been due"),
}


class Backlog:
    """The last due-backlog reading; the observable gauges report it."""

    def __init__(self) -> None:
        self.reading: tuple[int, float] | None = None

    def observe_due(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self.reading is None else [Observation(self.reading[0])]

    def observe_oldest_age(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self.reading is None else [Observation(self.reading[1])]


class Instruments:
    """Every instrument of the TM, created once on one meter."""

    def __init__(self, meter: Meter, backlog: Backlog) -> None:
        def spec(name: str) -> dict[str, str]:
            unit, description = METRICS[name]
            return {"name": name, "unit": unit, "description": description}

        self.jobs_started = meter.create_counter(**spec("stepping.jobs.started"))
        self.jobs_finished = meter.create_counter(**spec("stepping.jobs.finished"))
        self.step_attempts = meter.create_counter(**spec("stepping.step.attempts"))
        self.step_duration = meter.create_histogram(
            **spec("stepping.step.duration"), explicit_bucket_boundaries_advisory=_STEP_BUCKETS
        )
        self.job_duration = meter.create_histogram(
            **spec("stepping.job.duration"), explicit_bucket_boundaries_advisory=_JOB_BUCKETS
        )
        meter.create_observable_gauge(**spec("stepping.jobs.due"), callbacks=[backlog.observe_due])
        meter.create_observable_gauge(
            **spec("stepping.jobs.oldest_due_age"), callbacks=[backlog.observe_oldest_age]
        )


async def watch_backlog(
    read: Callable[[], Awaitable[tuple[int, float]]], backlog: Backlog, interval: float
) -> None:
    """Refresh ``backlog`` from ``read`` (one small query) every ``interval`` seconds."""
    while True:
        try:
            backlog.reading = await read()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the database is away: report nothing rather than stale
            backlog.reading = None
            _log.warning("could not read the due backlog: %s", err)
        await asyncio.sleep(interval)
