"""Test doubles for the TM core's seams: a fake clock and a scripted transport.

Only the clock and the transport are doubled; the store in unit tests is the real
``InMemoryStore`` (checked against Postgres by ``tests/contract``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc

from tm_service.domain import Endpoint
from tm_service.processing import CallResult

__all__ = ["Call", "FakeClock", "ScriptedTransport"]


class FakeClock:
    """Time that moves only when told to, or when the code under test waits.

    ``wait`` lets other tasks run for a few turns of the loop; if the event is still not
    set, it jumps the clock by the timeout at once and returns False: a 30 s backoff
    takes microseconds. ``waited`` records every timed wait.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.elapsed = 0.0
        self.waited: list[float] = []

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed)

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        for _ in range(5):
            if event.is_set():
                return True
            await asyncio.sleep(0)
        self.waited.append(timeout)
        self.advance(max(timeout, 0.0))
        return event.is_set()


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
        metadata: Sequence[tuple[str, str]],
        timeout: float,
    ) -> CallResult:
        record = Call(endpoint, payload, dict(metadata), timeout, self.clock.elapsed)
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
