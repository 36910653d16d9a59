"""What every processor shares: the store, the transport, the clock and the stop signal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tm_service.config import Settings
from tm_service.domain import ActiveJob
from tm_service.processing._transport import Transport
from tm_service.store import PostgresStore
from tm_service.telemetry import Telemetry

__all__ = ["Clock", "MonotonicClock", "ProcessingContext"]


class Clock(Protocol):
    def monotonic(self) -> float: ...


class MonotonicClock:
    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class ProcessingContext:
    store: PostgresStore
    transport: Transport
    settings: Settings
    clock: Clock = field(default_factory=MonotonicClock)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Called with a gid once the job reached a final state (wakes wait_result callers).
    on_final: Callable[[str], None] = lambda gid: None
    # Off by default: the processor checks ``telemetry.enabled`` once per pass.
    telemetry: Telemetry = field(default_factory=Telemetry)

    @property
    def lease(self) -> float:
        return self.settings.lease_seconds

    def mark_leased(self, job: ActiveJob, started: float, extra: float = 0.0) -> None:
        """A fenced write that began at monotonic ``started`` extended the lease."""
        job.lease_valid_until = started + extra + self.lease

    async def ensure_lease(self, job: ActiveJob, needed: float) -> None:
        """Renew the lease unless it surely outlasts ``needed`` more seconds (plus slack)."""
        now = self.clock.monotonic()
        if job.lease_valid_until - now > needed + min(5.0, self.lease / 4):
            return
        await self.store.renew(job, self.lease)
        self.mark_leased(job, now)

    async def sleep_or_stop(self, seconds: float) -> bool:
        """Sleep; True when the TM began stopping meanwhile."""
        if seconds <= 0:
            return self.stopping.is_set()
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True
