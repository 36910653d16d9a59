"""The job processor: the back-check of prepared jobs, message and saga execution.

A processor works on a job it holds the lease of. It stops as soon as a fenced write
says the lease was taken over (another replica now owns the job), and hands the job
back to the database when a retry is far off or the TM is stopping.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf.message import DecodeError
from stepping.contract import OP_QUERY_PREPARED, CallInfo

from tm_service._limits import cut_text
from tm_service.domain import ActiveJob, Attempt, Mode, StepState, StepStatus, TxStatus
from tm_service.errors import LeaseLost, StoreUnavailable
from tm_service.processing import _dialect
from tm_service.processing._context import ProcessingContext
from tm_service.processing._heartbeat import while_leased
from tm_service.processing._steps import Op, Outcome, StepResult, run_attempts

__all__ = ["JobProcessor"]

_log = logging.getLogger(__name__)

# Backoff while waiting for the database to come back mid-job.
_RECOVER_FIRST_DELAY = 0.5
_RECOVER_MAX_DELAY = 5.0


class JobProcessor:
    """Runs one job as far as it can go now."""

    def __init__(self, ctx: ProcessingContext) -> None:
        self._ctx = ctx

    async def run(self, job: ActiveJob) -> None:
        """Process the job as far as it can go now (a span in the job's trace when tracing).

        When the database goes away mid-pass the job is not dropped: the processor waits
        for it, re-reads the job (fenced: only if no other replica took it) and goes on.
        """
        telemetry = self._ctx.telemetry
        while True:
            try:
                if not telemetry.enabled:
                    await self._pass(job)
                else:
                    with telemetry.job_pass(job):
                        await self._pass(job)
                return
            except StoreUnavailable as err:
                _log.warning(
                    "database unavailable while running job; waiting for it: %s",
                    err,
                    extra={"gid": job.gid},
                )
                if not await self._recover(job):
                    return

    async def _pass(self, job: ActiveJob) -> None:
        try:
            if job.status is TxStatus.PREPARED and not await self._back_check(job):
                return
            if job.status is TxStatus.SUBMITTED:
                await self._forward(job)
            if job.status is TxStatus.COMPENSATING:
                await self._compensate(job)
        except LeaseLost:
            _log.warning(
                "stopped: the job was cancelled, or another replica owns it now",
                extra={"gid": job.gid},
            )

    async def _recover(self, job: ActiveJob) -> bool:
        """Wait for the database, then reload the job in place; False: stop working on it.

        The failed write's outcome is unknown (it may have committed), so the job is read
        back rather than trusted from memory. A step whose result was lost is delivered
        again (at least once, as always).
        """
        ctx = self._ctx
        delay = _RECOVER_FIRST_DELAY
        while not await ctx.sleep_or_stop(delay):
            started = ctx.clock.monotonic()
            try:
                fresh = await ctx.store.reload(job, owner=ctx.settings.replica_id, lease=ctx.lease)
            except StoreUnavailable:
                delay = min(delay * 2, _RECOVER_MAX_DELAY)
                continue
            if fresh is None:
                _log.warning("lease lost while the database was away", extra={"gid": job.gid})
                return False
            job.assume(fresh)
            ctx.mark_leased(job, started)
            _log.info("database back; resuming job", extra={"gid": job.gid})
            if job.is_final:
                ctx.on_final(job.gid)
                return False
            return True
        return False  # stopping: the lease lapses and another replica takes the job

    # -- phase one: is the prepared job's local transaction committed? -------------
    async def _back_check(self, job: ActiveJob) -> bool:
        from stepping.participant.v1 import participant_pb2

        ctx = self._ctx
        assert job.query_prepared is not None
        request = participant_pb2.QueryPreparedRequest(gid=job.gid, database=job.database)
        info = CallInfo(gid=job.gid, op=OP_QUERY_PREPARED, trace_context=job.trace_context)
        payload = request.SerializeToString()
        if _dialect.is_dtm(job):  # DTM's back-check: empty payload, its metadata
            payload, info = _dialect.back_check_call(job, ctx.settings.tm_address)
        await ctx.ensure_lease(job, job.options.step_timeout)
        called_at, t0 = ctx.clock.now(), ctx.clock.monotonic()
        result = await while_leased(
            ctx,
            job,
            job.options.step_timeout,
            ctx.transport.call(
                job.query_prepared,
                payload,
                info=info,
                timeout=job.options.step_timeout,
            ),
        )
        error = f"QueryPrepared: {cut_text(result.error_text, ctx.settings.max_error_text_bytes)}"
        took = ctx.clock.monotonic() - t0
        ok = result.code is grpc.StatusCode.OK
        check = Attempt(
            job.query_attempts + 1,
            OP_QUERY_PREPARED,
            called_at,
            took,
            result.code.value[0],
            "" if ok else error,
        )
        if _dialect.is_dtm(job) or result.code is grpc.StatusCode.OK:
            try:
                outcome = (
                    _dialect.back_check_outcome(result)
                    if _dialect.is_dtm(job)
                    else participant_pb2.QueryPreparedResponse.FromString(result.response).outcome
                )
            except DecodeError:
                outcome = participant_pb2.PREPARED_OUTCOME_UNSPECIFIED
            started = ctx.clock.monotonic()
            if outcome == participant_pb2.PREPARED_OUTCOME_COMMITTED:
                job.error = ""
                await ctx.store.set_status(
                    job, TxStatus.SUBMITTED, error="", lease=ctx.lease, check=check
                )
                ctx.mark_leased(job, started)
                job.status = TxStatus.SUBMITTED
                _log.info("back-check: committed; submitting", extra={"gid": job.gid})
                return True
            if outcome == participant_pb2.PREPARED_OUTCOME_ROLLED_BACK:
                job.error = "the local transaction did not commit (QueryPrepared: ROLLED_BACK)"
                await ctx.store.set_status(
                    job, TxStatus.ABORTED, error=job.error, lease=ctx.lease, check=check
                )
                job.status = TxStatus.ABORTED
                _log.info("back-check: rolled back; aborted", extra={"gid": job.gid})
                ctx.on_final(job.gid)
                return False
            error = "QueryPrepared answered no outcome"
        delay = job.specs[0].retry_policy.delay_after(job.query_attempts + 1)
        await ctx.store.defer_prepared(job, delay=delay, error=error, check=check)
        _log.info("back-check: %s; asking again in %.1fs", error, delay, extra={"gid": job.gid})
        return False

    # -- running the steps ---------------------------------------------------------
    async def _forward(self, job: ActiveJob) -> None:
        if job.options.concurrent:
            await self._forward_concurrent(job)
            return
        pending = [s for s in job.states if s.status is StepStatus.PENDING]
        for n, state in enumerate(pending):
            last = n == len(pending) - 1
            result = await run_attempts(self._ctx, job, job.specs[state.index], state, Op.ACTION)
            if result.outcome is Outcome.PAUSED:
                return
            if result.outcome is Outcome.FAILED:
                await self._fail(job, state, result)
                return
            await self._done(job, state, result, finish=TxStatus.SUCCEEDED if last else None)
        if not pending:  # recovered a job whose last step was recorded but not the job
            await self._finish(job, TxStatus.SUCCEEDED)

    async def _forward_concurrent(self, job: ActiveJob) -> None:
        pending = [s for s in job.states if s.status is StepStatus.PENDING]

        async def one(state: StepState) -> StepResult:
            result = await run_attempts(self._ctx, job, job.specs[state.index], state, Op.ACTION)
            if result.outcome is Outcome.DONE:
                await self._done(job, state, result, finish=None)
            return result

        results = await asyncio.gather(*(one(s) for s in pending))
        failed = [
            (s, r) for s, r in zip(pending, results, strict=True) if r.outcome is Outcome.FAILED
        ]
        if failed:
            for state, result in failed[1:]:
                await self._record_failure(job, state, result, job_status=None)
            await self._fail(job, *failed[0])
        elif all(r.outcome is Outcome.DONE for r in results):
            await self._finish(job, TxStatus.SUCCEEDED)

    async def _done(
        self, job: ActiveJob, state: StepState, result: StepResult, *, finish: TxStatus | None
    ) -> None:
        await self._record_step(job, state, result, StepStatus.SUCCEEDED, finish=finish)
        if finish is not None:
            job.status = finish
            self._ctx.on_final(job.gid)

    async def _fail(self, job: ActiveJob, state: StepState, result: StepResult) -> None:
        saga = job.options.mode is Mode.SAGA
        status = TxStatus.COMPENSATING if saga else TxStatus.FAILED
        await self._record_failure(job, state, result, job_status=status)
        job.status = status
        if status is TxStatus.FAILED:
            self._ctx.on_final(job.gid)

    async def _record_failure(
        self, job: ActiveJob, state: StepState, result: StepResult, *, job_status: TxStatus | None
    ) -> None:
        ctx = self._ctx
        spec = job.specs[state.index]
        job_error = f"step {spec.index} ({spec.name}) failed: {result.error}"
        started = ctx.clock.monotonic()
        await ctx.store.step_failed(
            job,
            state.index,
            attempts=result.attempts,
            error=result.error,
            job_status=job_status,
            job_error=job_error,
            lease=ctx.lease,
            call=result.call,
        )
        ctx.mark_leased(job, started)
        state.status = StepStatus.FAILED
        state.last_error = result.error
        state.next_attempt_time = None
        if job_status is not None:
            job.error = job_error
        _log.info("job failed: %s", job_error, extra={"gid": job.gid})

    async def _compensate(self, job: ActiveJob) -> None:
        ctx = self._ctx
        maybe_ran = _maybe_ran(job)
        for state in reversed(job.states):
            spec = job.specs[state.index]
            touched = (
                state.status in (StepStatus.SUCCEEDED, StepStatus.FAILED)
                or state.attempts
                or state.index in maybe_ran
            )
            if spec.compensation is None or not touched or state.status is StepStatus.COMPENSATED:
                continue
            result = await run_attempts(ctx, job, spec, state, Op.COMPENSATE)
            if result.outcome is Outcome.PAUSED:
                return
            if result.outcome is Outcome.NEEDS_ATTENTION:
                await self._park(job, state, result)
                return
            if result.outcome is Outcome.FAILED:  # permanent: retrying cannot help
                await self._record_failure(job, state, result, job_status=None)
                continue
            await self._record_step(job, state, result, StepStatus.COMPENSATED)
        await self._finish(job, TxStatus.FAILED)

    async def _park(self, job: ActiveJob, state: StepState, result: StepResult) -> None:
        """Stop retrying a compensation no retry can help; wait for an operator."""
        spec = job.specs[state.index]
        reason = (
            f"step {spec.index} ({spec.name}): its compensation failed with a "
            f"non-retryable code ({result.error}); Cancel gives up on it (the job FAILS), "
            "Resume tries it again after a fix"
        )
        await self._ctx.store.park(
            job,
            state.index,
            attempts=result.attempts,
            error=result.error,
            reason=reason,
            call=result.call,
        )
        state.last_error = result.error
        _log.warning("job needs attention: %s", reason, extra={"gid": job.gid})

    async def _record_step(
        self,
        job: ActiveJob,
        state: StepState,
        result: StepResult,
        status: StepStatus,
        *,
        finish: TxStatus | None = None,
    ) -> None:
        """Store a successful call (action or compensation); the write renews the lease."""
        ctx = self._ctx
        started = ctx.clock.monotonic()
        await ctx.store.step_done(
            job,
            state.index,
            status=status,
            attempts=result.attempts,
            result=result.response if status is StepStatus.SUCCEEDED else None,
            lease=ctx.lease,
            finish=finish,
            call=result.call,
        )
        ctx.mark_leased(job, started)
        state.status = status
        state.next_attempt_time = None
        if status is StepStatus.SUCCEEDED:
            state.result = result.response
            state.last_error = ""

    async def _finish(self, job: ActiveJob, status: TxStatus) -> None:
        await self._ctx.store.set_status(job, status, lease=self._ctx.lease)
        job.status = status
        self._ctx.on_final(job.gid)


def _maybe_ran(job: ActiveJob) -> frozenset[int]:
    """Steps whose action may have run unrecorded: a saga cancelled while a replica held
    it, and that replica never reported (it died, or its call was cut off). The call it
    had in flight was for its first pending step (every pending one, when concurrent)."""
    if not job.cancel_in_flight:
        return frozenset()
    pending = [s.index for s in job.states if s.status is StepStatus.PENDING]
    return frozenset(pending if job.options.concurrent else pending[:1])
