"""Time, injected: every time read and timed wait of the TM core goes through a Clock.

Production uses ``SystemClock``. Unit tests pass a fake whose time only moves when the
code under test waits, so retry backoffs, leases and deadlines run in microseconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """The TM's view of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (leases held in memory)."""
        ...

    def now(self) -> datetime:
        """The wall clock, timezone-aware UTC (deadlines, gids)."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds passed; True when it is set."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True
