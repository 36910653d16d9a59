"""Retention: finished jobs older than ``STEPPING_RETENTION_SECONDS`` are deleted.

Each pass runs on ONE replica at a time (``store.exclusive``: a Postgres advisory
lock, tried, never waited for) and deletes in small batches (``PURGE_BATCH`` rows a
statement, each its own short transaction, a pause between), so no lock is held long
and the hot path keeps its share of the database. Steps go by ON DELETE CASCADE.
``PurgeTransactions`` / ``stepping-tm tx purge`` use the same batches on demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tm_service.domain import TxStatus
from tm_service.errors import StoreUnavailable
from tm_service.store import PURGE_BATCH, RETENTION_LOCK_KEY, JobStore

__all__ = ["Retention", "purge_all"]

_log = logging.getLogger(__name__)


async def purge_all(
    store: JobStore,
    *,
    older_than: float,
    statuses: Sequence[TxStatus] = (),
    batch: int = PURGE_BATCH,
    pause: float = 0.01,
) -> int:
    """Delete every matching job, ``batch`` at a time; the number deleted."""
    total = 0
    while True:
        deleted = await store.purge_finished(older_than=older_than, statuses=statuses, limit=batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(pause)


class Retention:
    """The serve process's background deletion of old finished jobs."""

    def __init__(
        self,
        store: JobStore,
        *,
        keep_seconds: float,
        interval: float,
        batch: int = PURGE_BATCH,
        pause: float = 0.05,
    ) -> None:
        self._store = store
        self.keep_seconds = keep_seconds
        self.interval = interval
        self._batch = batch
        self._pause = pause
        self._task: asyncio.Task[None] | None = None

    async def run_pass(self) -> int | None:
        """One pass: the number deleted, or None when another replica runs one."""
        async with self._store.exclusive(RETENTION_LOCK_KEY) as mine:
            if not mine:
                return None
            started = time.monotonic()
            deleted = await purge_all(
                self._store, older_than=self.keep_seconds, batch=self._batch, pause=self._pause
            )
        if deleted:
            _log.info(
                "retention: deleted %d finished jobs older than %gs in %.1fs",
                deleted,
                self.keep_seconds,
                time.monotonic() - started,
            )
        return deleted

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass()
            except StoreUnavailable as err:
                _log.warning("retention: pass skipped, database unavailable (%s)", err)
            except Exception:  # a bug must not end the TM; the next pass tries again
                _log.exception("retention: pass failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run passes every ``interval`` seconds; nothing when keep_seconds is 0."""
        if self.keep_seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="stepping-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
