"""Test doubles for the TM core's seams: a fake clock and a scripted transport.

Only the clock and the transport are doubled; the store in unit tests is the real
``InMemoryStore`` (checked against Postgres by ``tests/contract``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from tm_service.domain import ActiveJob, Endpoint
from tm_service.errors import StoreUnavailable
from tm_service.processing import CallInfo, CallResult
from tm_service.store import InMemoryStore, Written
from tm_service.store._writes import FencedWrite

__all__ = ["Call", "FakeClock", "FlakyStore", "ScriptedTransport"]


class FakeClock:
    """Virtual time: it moves only when told to, or when every task waits on it.

    ``wait`` registers a timer; once the loop has run everything runnable, the clock
    jumps to the earliest timer and fires it. A 30 s backoff, or a 6 s call racing a
    lease heartbeat, takes microseconds and keeps its order. ``waited`` records every
    timed wait's length.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.elapsed = 0.0
        self.waited: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed)

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        self.waited.append(timeout)
        loop = asyncio.get_running_loop()
        timer: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._timers, (self.elapsed + timeout, next(self._seq), timer))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        setter = loop.create_task(event.wait())
        try:
            waiters: set[asyncio.Future[Any]] = {setter, timer}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            setter.cancel()
            if not timer.done():
                timer.cancel()
        return event.is_set()

    async def _drive(self) -> None:
        while True:
            for _ in range(_IDLE_TURNS):
                await asyncio.sleep(0)  # let every runnable task run first
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)  # woken by its event
            if not self._timers:
                return
            at, _, timer = heapq.heappop(self._timers)
            self.elapsed = max(self.elapsed, at)
            timer.set_result(None)


# Loop turns without progress after which every task is taken to wait on the clock.
_IDLE_TURNS = 20


@dataclass(frozen=True)
class Call:
    """One call the TM made, as the transport saw it."""

    endpoint: Endpoint
    payload: bytes
    metadata: dict[str, str]
    timeout: float
    at: float  # the fake clock's elapsed seconds when the call was made

    @property
    def op(self) -> str:
        return self.metadata.get("stepping-op", "")

    @property
    def step(self) -> int | None:
        raw = self.metadata.get("stepping-step-index")
        return int(raw) if raw is not None else None


Answer = CallResult | Callable[[Call], CallResult]


def ok(response: bytes = b"") -> CallResult:
    return CallResult(grpc.StatusCode.OK, response)


def fail(
    code: grpc.StatusCode, details: str = "", *, retry_after: float | None = None
) -> CallResult:
    return CallResult(code, b"", details, retry_after)


@dataclass
class ScriptedTransport:
    """Answers each (method, op) from a script: a queue of answers, the last one repeats.

    Unscripted calls answer OK with an empty response. ``during`` runs inside a call
    (e.g. to advance the clock or steal the lease while it is in flight); it may be async.
    """

    clock: FakeClock
    script: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    during: Callable[[Call], Awaitable[None] | None] | None = None
    closed: bool = False

    def answer(self, method: str, *answers: Answer, op: str = "action") -> None:
        self.script[(method, op)] = list(answers)

    def calls_to(self, method: str, op: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.endpoint.method == method and op in (None, c.op)]

    async def call(
        self,
        endpoint: Endpoint,
        payload: bytes,
        *,
        info: CallInfo,
        timeout: float,
    ) -> CallResult:
        record = Call(endpoint, payload, dict(info.metadata()), timeout, self.clock.elapsed)
        self.calls.append(record)
        await asyncio.sleep(0)
        if self.during is not None:
            pending = self.during(record)
            if pending is not None:
                await pending
        queue = self.script.get((endpoint.method, record.op))
        if not queue:
            return ok()
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(record) if callable(answer) else answer

    async def close(self) -> None:
        self.closed = True


class FlakyStore(InMemoryStore):
    """The in-memory store with database outages: while ``down`` (or for the next
    ``fail_next`` writes) operations raise StoreUnavailable; ``commit_then_fail`` writes
    are applied and then reported as failed (the commit's answer was lost)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.down = False
        self.fail_next = 0
        self.commit_then_fail = 0

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("database unavailable: test outage")
        if self.fail_next:
            self.fail_next -= 1
            raise StoreUnavailable("database unavailable: test outage")

    async def _fenced(self, job: ActiveJob, write: FencedWrite) -> Written:
        if self.commit_then_fail and not self.down:
            self.commit_then_fail -= 1
            await super()._fenced(job, write)
            raise StoreUnavailable("database unavailable: connection lost after commit")
        self._check()
        return await super()._fenced(job, write)

    async def reload(self, job: ActiveJob, *, owner: str, lease: float) -> ActiveJob | None:
        self._check()
        return await super().reload(job, owner=owner, lease=lease)

    async def claim_due(self, *, owner: str, lease: float, limit: int) -> list[ActiveJob]:
        self._check()
        return await super().claim_due(owner=owner, lease=lease, limit=limit)
