"""One step's attempts: call, classify the answer, record it, back off, try again."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import grpc
from stepping import contract
from stepping.contract import CallInfo

from tm_service._limits import cut_text
from tm_service.domain import ActiveJob, Attempt, StepSpec, StepState
from tm_service.errors import LeaseLost
from tm_service.processing import _dialect
from tm_service.processing._context import ProcessingContext
from tm_service.processing._heartbeat import while_leased
from tm_service.processing._watch import Verdict

__all__ = ["NON_RETRYABLE_BY_DEFAULT", "Op", "Outcome", "StepResult", "run_attempts"]

# Codes that end an ACTION at once (issue 13): the participant says the method does not
# exist, so no retry can succeed. INVALID_ARGUMENT and NOT_FOUND are left retryable:
# participants answer them for data that may appear later (a row another step or
# service writes) and for a deploy in progress, and ABORTED already says "no" for good.
# A compensation answering one of them is parked: the job waits for an operator
# (``needs_attention``: Cancel gives up on it, Resume tries again), never retried forever.
NON_RETRYABLE_BY_DEFAULT = frozenset({grpc.StatusCode.UNIMPLEMENTED})

_log = logging.getLogger(__name__)


class Op(enum.StrEnum):
    ACTION = contract.OP_ACTION
    COMPENSATE = contract.OP_COMPENSATE


class Outcome(enum.Enum):
    DONE = "done"  # the call succeeded (not yet recorded)
    FAILED = "failed"  # failed for good (not yet recorded)
    PAUSED = "paused"  # handed back to the database (retry later, or shutdown)
    # A compensation answered a non-retryable code: no retry can help (not yet recorded).
    NEEDS_ATTENTION = "needs_attention"


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Outcome
    attempts: int
    response: bytes = b""
    error: str = ""
    call: Attempt | None = None  # the last call, for the step's history (None: no call)


def step_call(job: ActiveJob, spec: StepSpec, op: Op, attempt: int) -> CallInfo:
    return CallInfo(
        gid=job.gid,
        op=op.value,
        step_index=spec.index,
        step_name=spec.name,
        attempt=attempt,
        trace_context=job.trace_context,
        headers=spec.headers,
    )


def _non_retryable(codes: tuple[str, ...], code: grpc.StatusCode) -> bool:
    """Whether ``code`` ends an action at once (the step's list, else the default)."""
    return code.name in codes if codes else code in NON_RETRYABLE_BY_DEFAULT


def _deadline_passed(ctx: ProcessingContext, job: ActiveJob) -> bool:
    return job.deadline_at is not None and ctx.clock.now() >= job.deadline_at


async def run_attempts(
    ctx: ProcessingContext, job: ActiveJob, spec: StepSpec, state: StepState, op: Op
) -> StepResult:
    """Call the step until it succeeds, fails for good, or must wait in the database.

    Failed attempts are recorded here; the caller records DONE and FAILED.
    Compensations are retried until they succeed: they cannot fail for business reasons.
    A permanent failure (a response over the TM's limit) ends either op at once.
    """
    endpoint = spec.action if op is Op.ACTION else spec.compensation
    assert endpoint is not None
    policy = spec.retry_policy
    while True:
        if ctx.stopping.is_set():
            await ctx.store.release(job)
            return StepResult(Outcome.PAUSED, state.attempts)
        if op is Op.ACTION and _deadline_passed(ctx, job):
            return StepResult(Outcome.FAILED, state.attempts, error="job deadline exceeded")
        await ctx.ensure_lease(job, spec.timeout)
        attempt = state.attempts + 1
        called_at, t0 = ctx.clock.now(), ctx.clock.monotonic()
        result = await while_leased(
            ctx,
            job,
            spec.timeout,
            ctx.transport.call(
                endpoint,
                spec.payload,
                info=_dialect.step_call(job, spec, op.value, attempt, ctx.settings.tm_address)
                if _dialect.is_dtm(job)
                else step_call(job, spec, op, attempt),
                timeout=spec.timeout,
            ),
        )
        state.attempts = attempt
        took = ctx.clock.monotonic() - t0
        if result.code is grpc.StatusCode.OK:
            call = Attempt(attempt, op.value, called_at, took, 0)
            return StepResult(Outcome.DONE, attempt, response=result.response, call=call)
        # A participant's text is stored and logged: cut to max_error_text_bytes.
        error = cut_text(result.error_text, ctx.settings.max_error_text_bytes)
        call = Attempt(attempt, op.value, called_at, took, result.code.value[0], error)
        _log.info(
            "step attempt failed",
            extra={
                "gid": job.gid,
                "step": spec.index,
                "op": op.value,
                "attempt": attempt,
                "error": error,
            },
        )
        if result.permanent:
            return StepResult(Outcome.FAILED, attempt, error=error, call=call)
        if op is Op.ACTION:
            # A refused target is configuration, not weather: retrying would not help.
            # (A compensation keeps retrying, unless its code says no retry can help.)
            if _dialect.is_dtm(job):  # DTM's terms: only a saga action's FAILURE
                if _dialect.business_failure(job, result):
                    return StepResult(Outcome.FAILED, attempt, error=error, call=call)
            elif result.code is grpc.StatusCode.ABORTED or result.permanent:
                return StepResult(Outcome.FAILED, attempt, error=error, call=call)
            if _non_retryable(policy.non_retryable_codes, result.code):
                return StepResult(
                    Outcome.FAILED,
                    attempt,
                    error=f"{error} (not retried: non-retryable code {result.code.name})",
                    call=call,
                )
            if policy.exhausted(attempt):
                return StepResult(
                    Outcome.FAILED,
                    attempt,
                    error=f"gave up after {attempt} attempts: {error}",
                    call=call,
                )
        elif _non_retryable(policy.non_retryable_codes, result.code):
            # A compensation that cannot run (e.g. not implemented): waiting for an
            # operator beats retrying forever (issue 13).
            return StepResult(Outcome.NEEDS_ATTENTION, attempt, error=error, call=call)
        if result.retry_after is not None:
            # The participant knows best (RetryLater), down to the TM's minimum interval.
            delay = max(result.retry_after, ctx.settings.min_retry_interval_seconds)
        elif result.code is grpc.StatusCode.FAILED_PRECONDITION or (
            _dialect.is_dtm(job) and _dialect.ongoing(result)
        ):
            delay = policy.initial_interval
        else:
            delay = policy.delay_after(attempt)
        keep = delay <= ctx.settings.inline_retry_max_seconds
        started = ctx.clock.monotonic()
        await ctx.store.step_attempt_failed(
            job,
            spec.index,
            attempts=attempt,
            error=error,
            delay=delay,
            keep_lease=keep,
            lease=ctx.lease,
            call=call,
        )
        state.last_error = error
        if not keep:
            return StepResult(Outcome.PAUSED, attempt, error=error)
        ctx.mark_leased(job, started, extra=delay)
        verdict = await ctx.wait_retry(job, delay)
        if verdict is Verdict.STOPPING:
            await ctx.store.release(job)
            return StepResult(Outcome.PAUSED, attempt, error=error)
        if verdict is not None:  # no further call: the job is not ours any more
            if verdict is Verdict.CANCELLED:
                await ctx.store.release_cancelled(job, in_flight=False)
            raise LeaseLost(job.gid)
