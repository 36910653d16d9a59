"""Group commit: writes from many jobs share one statement and one commit.

A caller hands its write to the batcher and awaits the outcome; the write is durable
(committed) before the await returns, exactly as if it had run alone. While one batch
is being written, the next writes queue up and go together in the following batch, so
the batch size grows with the load and a lone write goes out at once (no timer).

At most one write per job is in flight at a time: a job's writes keep their order, a
statement never touches the same row twice and concurrent batches never share a row.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Pending", "WriteBatcher"]


@dataclass(slots=True)
class Pending:
    """One queued write: what kind, for which job, its values, and who waits for it."""

    kind: str
    gid: str
    values: Any
    future: asyncio.Future[Any]


class WriteBatcher:
    """Queues writes and runs them in batches through ``write_batch``.

    ``write_batch`` resolves every future of the batch it is given (with a result or
    an exception); an exception it raises itself fails the writes it left open.
    """

    def __init__(
        self,
        write_batch: Callable[[list[Pending]], Awaitable[None]],
        *,
        max_batch: int,
        flushers: int,
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._flushers = flushers
        self._queue: deque[Pending] = deque()
        self._running = 0
        # Jobs with a write in a batch being written: their next write waits, so two
        # concurrent batches never touch the same rows (no reordering, no deadlock).
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # the first writer's

    async def write(self, kind: str, gid: str, values: Any) -> Any:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        pending = Pending(kind, gid, values, loop.create_future())
        self._queue.append(pending)
        if self._running < self._flushers:
            self._running += 1
            task = loop.create_task(self._flush())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
        return await pending.future

    def _take(self) -> list[Pending]:
        batch: list[Pending] = []
        seen = self._in_flight
        deferred: list[Pending] = []
        queue = self._queue
        while queue and len(batch) < self._max_batch:
            p = queue.popleft()
            if p.future.done():  # the caller was cancelled: nothing to write
                continue
            if p.gid in seen:
                deferred.append(p)
                continue
            seen.add(p.gid)
            batch.append(p)
        queue.extendleft(reversed(deferred))
        return batch

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if not batch:
                    break  # only writes of jobs in flight: their flusher takes them next
                try:
                    await self._write_one_batch(batch)
                finally:
                    self._in_flight.difference_update(p.gid for p in batch)
        finally:
            self._running -= 1

    async def _write_one_batch(self, batch: list[Pending]) -> None:
        try:
            await self._write_batch(batch)
        except Exception as exc:
            _fail(batch, exc)
        except BaseException as exc:  # cancelled (the loop is closing): fail everyone
            _fail(batch, exc)
            _fail(self._queue, exc)
            self._queue.clear()
            raise


def _fail(pendings: Iterable[Pending], exc: BaseException) -> None:
    for p in pendings:
        if not p.future.done():
            p.future.set_exception(exc)
