"""The engine: runs jobs in this process, sweeps the database for due ones, waits, stops.

Jobs submitted here start at once; the sweeper claims jobs that are due (a prepared
job's back-check, a retry handed to the database, a dead replica's lapsed lease).
Nothing lives only in memory: a job's task can vanish with the process and the
database still says what is left to do.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from tm_service.domain import ActiveJob, Transaction
from tm_service.errors import StoreUnavailable
from tm_service.processing._context import ProcessingContext
from tm_service.processing._processor import JobProcessor
from tm_service.processing._watch import Verdict

__all__ = ["Engine"]

_log = logging.getLogger(__name__)


class Engine:
    """Owns the running jobs of this process and the sweeper."""

    def __init__(self, ctx: ProcessingContext) -> None:
        self._ctx = ctx
        self._processor = JobProcessor(ctx)
        self._active: dict[str, asyncio.Task[None]] = {}
        self._jobs: dict[str, ActiveJob] = {}
        self._waiters: dict[str, list[asyncio.Event]] = {}
        self._reclaimed: dict[str, ActiveJob] = {}
        # Jobs the sweeper started (a backlog, retries from the database): at most
        # ``sweep_max_active`` of them, so that a backlog cannot crowd out new jobs.
        self._swept: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # The last claim got all it asked for: more jobs are probably due.
        self._more_due = False
        ctx.on_final = self._notify_final

    @property
    def stopping(self) -> bool:
        return self._ctx.stopping.is_set()

    @property
    def started(self) -> bool:
        """The sweeper runs: the database was reached (and migrated) at start."""
        return self._sweeper is not None

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def has_room(self) -> bool:
        """Whether another job may run here now (``max_active_jobs``)."""
        return len(self._active) < self._ctx.settings.max_active_jobs

    def start(self) -> None:
        """Start the sweeper (call from within the running loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="stepping-sweeper")
            self._watcher = asyncio.create_task(self._watch_loop(), name="stepping-lease-watch")

    def run(self, job: ActiveJob, *, swept: bool = False) -> None:
        """Start working on a job this process just leased (``swept``: by the sweeper)."""
        if job.gid in self._active:
            # This process's own sweeper re-claimed a job whose lease lapsed while its
            # processor waited for the database: the claim holds the newest lease, and the
            # old processor stops at its next fenced read or write. Go on from the claim
            # then, instead of leaving the job leased to nobody until that lease lapses too.
            self._reclaimed[job.gid] = job
            return
        self._ctx.mark_claimed(job)
        if swept:
            self._swept.add(job.gid)
        task = asyncio.create_task(self._processor.run(job), name=f"job:{job.gid}")
        self._active[job.gid] = task
        self._jobs[job.gid] = job
        task.add_done_callback(functools.partial(self._task_done, job.gid))

    def _task_done(self, gid: str, task: asyncio.Task[None]) -> None:
        self._active.pop(gid, None)
        self._jobs.pop(gid, None)
        was_swept = gid in self._swept
        self._swept.discard(gid)
        if not task.cancelled() and task.exception() is not None:
            _log.error("job task crashed", exc_info=task.exception(), extra={"gid": gid})
        again = self._reclaimed.pop(gid, None)
        if again is not None and not self.stopping:
            self.run(again, swept=was_swept)
            return
        if self._more_due and self._sweep_room() >= self._refill_at():
            # The last sweep was cut short by the room, not by what was due, and there
            # is room for a good batch again: sweep without waiting for the next tick
            # (not at every free slot: a claim is a round trip, so claim in batches).
            self._wake.set()

    def _refill_at(self) -> int:
        s = self._ctx.settings
        return max(1, min(s.sweep_batch_size, s.sweep_max_active // 4, s.max_active_jobs // 4))

    def _sweep_room(self) -> int:
        s = self._ctx.settings
        return min(s.max_active_jobs - len(self._active), s.sweep_max_active - len(self._swept))

    async def sweep_once(self) -> int:
        """Claim the due jobs this process has room for and start them; returns how many."""
        room = min(self._ctx.settings.sweep_batch_size, self._sweep_room())
        if room <= 0 or self.stopping:
            return 0
        jobs = await self._ctx.store.claim_due(
            owner=self._ctx.settings.replica_id, lease=self._ctx.lease, limit=room
        )
        self._more_due = len(jobs) == room
        for job in jobs:
            self.run(job, swept=True)
        return len(jobs)

    async def _sweep_loop(self) -> None:
        interval = self._ctx.settings.poll_interval_seconds
        down = False
        while not self.stopping:
            # Cleared before the claim, not after: room that frees up while the claim
            # runs must wake the next sweep instead of waiting a poll interval.
            self._wake.clear()
            try:
                claimed = await self.sweep_once()
                if down:
                    _log.info("sweeps resumed: the database is back")
                down = False
            except StoreUnavailable as err:
                # One line per outage, not one per poll (the health watch reports it too).
                _log.log(logging.DEBUG if down else logging.ERROR, "sweep failed: %s", err)
                down = True
                claimed = 0
            except Exception:
                _log.exception("sweep failed")
                claimed = 0
            if claimed >= self._ctx.settings.sweep_batch_size:
                continue  # more may be due right now
            await self._ctx.clock.wait(self._wake, interval)

    async def _watch_loop(self) -> None:
        """Once per poll: tell waiting jobs that were cancelled or taken over (``_watch``)."""
        ctx = self._ctx
        interval = ctx.settings.poll_interval_seconds
        while not await ctx.sleep_or_stop(interval):
            try:
                await ctx.watch.check(ctx.store, ctx.clock.monotonic(), interval)
            except Exception:
                _log.exception("lease watch failed")

    # -- waiting for results ----------------------------------------------------------
    def _notify_final(self, gid: str) -> None:
        for event in self._waiters.get(gid, ()):
            event.set()

    async def wait_final(self, gid: str, timeout: float) -> Transaction | None:
        """The job once final, or as it is when ``timeout`` runs out (None: unknown gid)."""
        clock = self._ctx.clock
        deadline = clock.monotonic() + timeout
        job = self._jobs.get(gid)
        if job is not None:  # running here: its final state is known without a read
            if not job.is_final:
                await self._wait_event(gid, timeout)
            if job.is_final:
                return job.snapshot()
        while True:
            stored = await self._ctx.store.get(gid)
            if stored is None:
                return None
            remaining = deadline - clock.monotonic()
            if stored.transaction.is_final or remaining <= 0:
                return stored.transaction
            # The event fires when this process finishes the job; the poll covers a
            # job finished by another replica.
            await self._wait_event(gid, min(remaining, self._ctx.settings.poll_interval_seconds))

    async def _wait_event(self, gid: str, timeout: float) -> None:
        event = asyncio.Event()
        waiters = self._waiters.setdefault(gid, [])
        waiters.append(event)
        try:
            await self._ctx.clock.wait(event, timeout)
        finally:
            waiters.remove(event)
            if not waiters:
                self._waiters.pop(gid, None)

    # -- job control (issue 13) ---------------------------------------------------
    def job_cancelled(self, gid: str) -> None:
        """A Cancel here moved the job (its lease token bumped): tell its task at once.

        An inline retry's wait ends without another call; a call in flight may finish
        within the lease held here and its result is recorded (``_watch``). Waiters
        re-read the store.
        """
        self._ctx.watch.tell(gid, Verdict.CANCELLED)
        self._notify_final(gid)

    async def wait_change(self, gid: str, timeout: float) -> None:
        """Return when this process finished or cancelled the job, or after ``timeout``."""
        await self._wait_event(gid, timeout)

    # -- stopping -----------------------------------------------------------------
    async def shutdown(self, grace: float) -> None:
        """Stop claiming; let running step calls finish within ``grace``; hand jobs back.

        Processors see the stop signal between attempts and release their leases, so
        other replicas take the jobs over at once instead of after the lease lapses.
        """
        self._ctx.stopping.set()
        self._ctx.watch.stopping()
        self._wake.set()
        for loop in (self._sweeper, self._watcher):
            if loop is not None:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
        tasks = list(self._active.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                _log.warning(
                    "%d jobs still running after the grace period; cancelled", len(pending)
                )
                await asyncio.gather(*pending, return_exceptions=True)
        await self._ctx.transport.close()
