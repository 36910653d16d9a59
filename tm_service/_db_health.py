"""Whether the database can be used: waited for at start, then watched for the health service.

A TM without its database can do nothing useful, so its gRPC health follows the
database: a watcher pings it every ``db_check_interval_seconds`` and a failed store
operation flips health to NOT_SERVING at once (the store's ``on_unavailable`` hook);
the next successful ping brings SERVING back. At start the TM waits for the database
with capped backoff, one log line per failed attempt, instead of exiting (which in a
cluster is a crash loop).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from tm_service.clock import Clock, SystemClock
from tm_service.errors import StoreUnavailable

__all__ = ["DatabaseWatch", "migrate_when_reachable", "wait_for_database"]

_log = logging.getLogger(__name__)

# Backoff between attempts to reach the database at start.
FIRST_DELAY = 0.5
MAX_DELAY = 5.0
# A ping that gets no answer (a black-holed network) counts as a failure after this.
PING_TIMEOUT = 3.0


class Database(Protocol):
    async def ping(self) -> None: ...

    async def migrate(self, revision: str = "head") -> None: ...


async def _ping(db: Database, timeout: float) -> None:
    try:
        await asyncio.wait_for(db.ping(), timeout)
    except TimeoutError:
        raise StoreUnavailable(f"database unavailable: no answer within {timeout:.1f}s") from None


async def wait_for_database(
    db: Database,
    *,
    migrate: bool,
    revision: str = "head",
    timeout: float | None = None,
    clock: Clock | None = None,
) -> None:
    """Ping (then migrate, if asked) until it works, backing off 0.5 s → 5 s.

    Logs one line per failed attempt. ``timeout`` None waits until cancelled; else
    StoreUnavailable once it has run out.
    """
    clock = clock or SystemClock()
    deadline = None if timeout is None else clock.monotonic() + timeout
    delay = FIRST_DELAY
    attempt = 0
    never = asyncio.Event()
    while True:
        attempt += 1
        try:
            await _ping(db, PING_TIMEOUT)
            if migrate:
                await db.migrate(revision)
            if attempt > 1:
                _log.info("database reachable (attempt %d)", attempt)
            return
        except StoreUnavailable as err:
            pause = delay
            if deadline is not None:
                pause = min(delay, deadline - clock.monotonic())
                if pause <= 0:
                    raise StoreUnavailable(
                        f"gave up after {timeout:.0f}s waiting for the database: {err}"
                    ) from None
            _log.warning(
                "waiting for the database (attempt %d, next in %.1fs): %s", attempt, pause, err
            )
        await clock.wait(never, pause)
        delay = min(delay * 2, MAX_DELAY)


async def migrate_when_reachable(
    url: str, *, revision: str = "head", timeout: float | None = None
) -> bool:
    """``db upgrade`` and the ``--workers`` parent: wait for the database, migrate, close.

    False when SIGTERM/SIGINT came first (a clean exit, no traceback).
    """
    from tm_service.store import PostgresStore

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    store = PostgresStore.from_url(url, pool_size=1)
    try:
        await wait_for_database(store, migrate=True, revision=revision, timeout=timeout)
        return True
    except asyncio.CancelledError:
        task.uncancel()
        return False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await store.close()


class DatabaseWatch:
    """Pings the database and reports it through ``report(serving)`` on every change.

    Starts in the serving state (after ``wait_for_database``); ``notice`` is the
    store's ``on_unavailable`` hook.
    """

    def __init__(
        self,
        db: Database,
        report: Callable[[bool], Awaitable[None]],
        *,
        interval: float,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._report = report
        self._interval = interval
        self._clock = clock or SystemClock()
        self._failed = asyncio.Event()
        self._cause: StoreUnavailable | None = None
        self._task: asyncio.Task[None] | None = None
        self.serving = True

    def notice(self, err: StoreUnavailable) -> None:
        """A store operation found the database gone: report NOT_SERVING now."""
        self._cause = err
        self._failed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stepping-db-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            if self.serving:
                await self._clock.wait(self._failed, self._interval)
            else:  # already down: failing requests must not turn this into a busy loop
                await self._clock.wait(asyncio.Event(), self._interval)
            if self._failed.is_set():
                self._failed.clear()
                await self._set(False, self._cause)
            try:
                await _ping(self._db, max(self._interval, PING_TIMEOUT))
            except StoreUnavailable as err:
                await self._set(False, err)
            else:
                await self._set(True, None)

    async def _set(self, serving: bool, cause: StoreUnavailable | None) -> None:
        if serving == self.serving:
            return
        self.serving = serving
        if serving:
            _log.info("database reachable again; health SERVING")
        else:
            _log.error("database unreachable; health NOT_SERVING: %s", cause)
        await self._report(serving)
