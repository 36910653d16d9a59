"""What every processor shares: the store, the transport, the clock and the stop signal."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from tm_service.clock import Clock, SystemClock
from tm_service.config import Settings
from tm_service.domain import ActiveJob
from tm_service.processing._lease import Lease
from tm_service.processing._transport import Transport
from tm_service.processing._watch import LeaseWatch, Verdict
from tm_service.store import JobStore
from tm_service.telemetry import Telemetry

__all__ = ["ProcessingContext"]


@dataclass
class ProcessingContext:
    store: JobStore
    transport: Transport
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Called with a gid once the job reached a final state (wakes wait_result callers).
    on_final: Callable[[str], None] = lambda gid: None
    # Off by default: the processor checks ``telemetry.enabled`` once per pass.
    telemetry: Telemetry = field(default_factory=Telemetry)
    # Waits (inline retries, long calls) told when their job is cancelled or taken.
    watch: LeaseWatch = field(default_factory=LeaseWatch)

    @property
    def lease(self) -> float:
        """Seconds a lease is taken or renewed for."""
        return self.settings.lease_seconds

    @functools.cached_property
    def lease_terms(self) -> Lease:
        # Read on every step attempt and write: built once (settings do not change).
        return Lease(self.settings.lease_seconds)

    def mark_claimed(self, job: ActiveJob) -> None:
        """The job was just leased by a write whose start is unknown (insert, claim)."""
        job.lease_valid_until = self.lease_terms.after_claim(self.clock.monotonic())

    def mark_leased(self, job: ActiveJob, started: float, extra: float = 0.0) -> None:
        """A fenced write that began at monotonic ``started`` extended the lease."""
        job.lease_valid_until = self.lease_terms.after_write(started, extra)

    async def ensure_lease(self, job: ActiveJob, needed: float) -> None:
        """Renew the lease unless it surely outlasts ``needed`` more seconds (plus slack)."""
        now = self.clock.monotonic()
        if self.lease_terms.outlasts(job.lease_valid_until, now, needed):
            return
        await self.store.renew(job, self.lease)
        self.mark_leased(job, now)

    async def wait_retry(self, job: ActiveJob, seconds: float) -> Verdict | None:
        """Wait before the job's next attempt; a verdict when the wait was cut short
        (the TM stops, the job was cancelled or taken over), else None."""
        if self.stopping.is_set():
            return Verdict.STOPPING
        with self.watch.watching(job, self.clock.monotonic(), call=False) as watched:
            await self.clock.wait(watched.event, seconds)
        return watched.verdict

    async def sleep_or_stop(self, seconds: float) -> bool:
        """Sleep; True when the TM began stopping meanwhile."""
        if seconds <= 0:
            return self.stopping.is_set()
        return await self.clock.wait(self.stopping, seconds)
