"""Calls that may outlast the lease: the lease is renewed while the call is in flight.

A step may run for up to its timeout (allowed up to 24 h), far beyond a 30 s lease.
Leasing for the whole timeout would leave a dead replica's job stuck that long, so the
lease stays short and a heartbeat renews it while the call runs (when a third of it is
used). If renewals fail until the lease is about to lapse, the call is cancelled first:
this replica never has a call in flight on a lease that may have lapsed, so no other
replica can start the same step while this one's call still runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from tm_service.domain import ActiveJob
from tm_service.errors import LeaseLost, StoreUnavailable
from tm_service.processing._context import ProcessingContext
from tm_service.processing._watch import Verdict

__all__ = ["while_leased"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


async def while_leased(
    ctx: ProcessingContext, job: ActiveJob, timeout: float, call: Coroutine[Any, Any, _T]
) -> _T:
    """Await ``call`` (which ends within ``timeout``), keeping the job's lease alive.

    Raises LeaseLost or StoreUnavailable (with the call cancelled) when the lease could
    not be kept; the call's outcome is then unknown and the step is delivered again.
    When the job is cancelled meanwhile (the renewal is refused, or the lease watch
    says so), the call may still finish within the lease held here: its result is
    returned, and the step write that follows records it (``store._after_cancel``).
    """
    terms = ctx.lease_terms
    if terms.outlasts(job.lease_valid_until, ctx.clock.monotonic(), timeout):
        return await call  # the common case: no task, no timer
    task = asyncio.ensure_future(call)
    try:
        with ctx.watch.watching(job, ctx.clock.monotonic(), call=True) as watched:
            task.add_done_callback(lambda _: watched.event.set())
            while True:
                # Renew once a third of the lease is used.
                due_in = job.lease_valid_until - terms.seconds * 2 / 3 - ctx.clock.monotonic()
                if not await ctx.clock.wait(watched.event, due_in):
                    try:
                        await _renew(ctx, job, watched.event)
                    except LeaseLost:  # our lease still holds: a Cancel bumped the token
                        watched.tell(Verdict.CANCELLED)
                if task.done():
                    return task.result()
                if watched.verdict is not None:
                    return await _after_cancel(ctx, job, task, watched.verdict)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _after_cancel(
    ctx: ProcessingContext, job: ActiveJob, task: asyncio.Future[_T], verdict: Verdict
) -> _T:
    """The job is not ours any more. Cancelled: let the call finish within the lease
    still held here (its result gets recorded); taken over: stop at once."""
    if verdict is Verdict.CANCELLED:
        finished = asyncio.Event()
        task.add_done_callback(lambda _: finished.set())
        left = job.lease_valid_until - ctx.lease_terms.slack - ctx.clock.monotonic()
        if await ctx.clock.wait(finished, left):
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        _log.warning(
            "job cancelled; its call did not end within the lease and was cut off",
            extra={"gid": job.gid},
        )
        await ctx.store.release_cancelled(job, in_flight=True)
    raise LeaseLost(job.gid)


async def _renew(ctx: ProcessingContext, job: ActiveJob, done: asyncio.Event) -> None:
    """Renew the lease, retrying while it surely holds; return early when ``done`` is set
    (the call ended, or the lease watch told the job)."""
    terms, clock = ctx.lease_terms, ctx.clock
    retry = min(1.0, terms.seconds / 10)
    while True:
        started = clock.monotonic()
        left = job.lease_valid_until - started - terms.slack
        if left <= 0:
            raise StoreUnavailable("the lease could not be renewed in time; call cancelled")
        try:
            async with asyncio.timeout(left):
                await ctx.store.renew(job, ctx.lease)
        except (StoreUnavailable, TimeoutError) as err:
            _log.warning("lease renewal failed: %s", err or "timed out", extra={"gid": job.gid})
            if await clock.wait(done, min(retry, left)):
                return
            continue
        ctx.mark_leased(job, started)
        return
