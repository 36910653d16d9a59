"""The fenced writes of a processor, as one ``FencedWrite`` value each.

Both stores share this translation (what a step result or a status change writes);
each applies a ``FencedWrite`` its own way: Postgres in the group-committed statement
(``_writes``), the in-memory store in Python. So the meaning of a processor's write is
written down once.
"""

from __future__ import annotations

import json
import logging

from tm_service.domain import (
    FINAL_STATUSES,
    HISTORY_LIMIT,
    ActiveJob,
    Attempt,
    StepStatus,
    TxStatus,
)
from tm_service.errors import LeaseLost
from tm_service.store._port import Written
from tm_service.store._writes import FencedWrite

__all__ = ["PARKED_SECONDS", "FencedWrites"]

_log = logging.getLogger(__name__)

# How long a parked job is left alone (only Cancel or Resume moves it): ten years.
PARKED_SECONDS = 10 * 365 * 86400.0


def _remember(job: ActiveJob, index: int, call: Attempt | None) -> None:
    """The running job's own copy of the step's history (its final snapshot has it)."""
    if call is not None:
        state = job.states[index]
        state.history = (*state.history, call)[-HISTORY_LIMIT:]


def _calls(attempt: Attempt | None) -> str | None:
    """The ``history`` / ``qp_history`` parameter of a write: one call, or nothing."""
    return None if attempt is None else json.dumps([attempt.to_json()])


class FencedWrites:
    """Processor writes in terms of one primitive, ``_fenced``."""

    async def _fenced(self, job: ActiveJob, write: FencedWrite) -> Written:
        """Apply ``write`` if the job's lease token still matches; else raise LeaseLost."""
        raise NotImplementedError

    async def _after_cancel(self, job: ActiveJob, write: FencedWrite, *, known: bool) -> bool:
        """The lease was lost to a Cancel (not to another replica): record ``write``'s step
        part (what the call in flight did) and release the job; False: not that case.

        Allowed only while nothing happened since the Cancel (the job's token is one past
        ``write.token``, the one it had when cancelled). The job's own status stays what
        the Cancel made it. ``known``: what was in flight is now known (a result, or no
        call), so a saga need not compensate the step just in case.
        """
        raise NotImplementedError

    async def _write(self, job: ActiveJob, write: FencedWrite) -> Written:
        try:
            written = await self._fenced(job, write)
        except LeaseLost:
            if write.step is not None and await self._after_cancel(job, write, known=True):
                _log.info(
                    "job cancelled during the call; its result is recorded",
                    extra={"gid": job.gid, "step": write.step},
                )
            raise
        job.update_time, job.finish_time = written.update_time, written.finish_time
        return written

    async def release_cancelled(self, job: ActiveJob, *, in_flight: bool) -> bool:
        """Hand back a job that was cancelled while held here (see ``_after_cancel``);
        ``in_flight``: a call was cut off, its effect unknown."""
        release = FencedWrite(job.lease_token, None)
        return await self._after_cancel(job, release, known=not in_flight)

    async def renew(self, job: ActiveJob, lease: float) -> None:
        await self._write(job, FencedWrite(job.lease_token, lease))

    async def release(self, job: ActiveJob) -> None:
        """Give the job back (shutdown): another replica may take it when it is due."""
        await self._write(job, FencedWrite(job.lease_token, None))

    async def step_attempt_failed(
        self,
        job: ActiveJob,
        index: int,
        *,
        attempts: int,
        error: str,
        delay: float,
        keep_lease: bool,
        lease: float,
        call: Attempt | None = None,
    ) -> None:
        """Record a failed attempt (``call``, for the history); due again after ``delay``."""
        _remember(job, index, call)
        await self._write(
            job,
            FencedWrite(
                job.lease_token,
                delay + lease if keep_lease else None,
                next_in=delay,
                step=index,
                step_status=int(StepStatus.PENDING),
                attempts=attempts,
                last_error=error,
                step_next_in=delay,
                history=_calls(call),
            ),
        )

    async def step_done(
        self,
        job: ActiveJob,
        index: int,
        *,
        status: StepStatus,
        attempts: int,
        result: bytes | None,
        lease: float,
        finish: TxStatus | None = None,
        call: Attempt | None = None,
    ) -> Written:
        """Record a step's success (or compensation); optionally finish the job too."""
        _remember(job, index, call)
        return await self._write(
            job,
            FencedWrite(
                job.lease_token,
                None if finish is not None else lease,
                status=finish,
                finish=finish is not None,
                step=index,
                step_status=int(status),
                attempts=attempts,
                # A step that succeeded has no error (issue 13): earlier ones are history.
                last_error="" if status is StepStatus.SUCCEEDED else None,
                set_result=status is StepStatus.SUCCEEDED,
                result=result,
                history=_calls(call),
            ),
        )

    async def step_failed(
        self,
        job: ActiveJob,
        index: int,
        *,
        attempts: int,
        error: str,
        job_status: TxStatus | None,
        job_error: str,
        lease: float,
        call: Attempt | None = None,
    ) -> Written:
        """A step failed for good: the job fails (or starts compensating) with ``job_error``.

        ``job_status`` None records the step only (another failure decides the job).
        """
        final = job_status is not None and job_status is not TxStatus.COMPENSATING
        _remember(job, index, call)
        return await self._write(
            job,
            FencedWrite(
                job.lease_token,
                None if final else lease,
                status=job_status,
                error=job_error if job_status is not None else None,
                next_in=0.0 if job_status is TxStatus.COMPENSATING else None,
                finish=final,
                step=index,
                step_status=int(StepStatus.FAILED),
                attempts=attempts,
                last_error=error,
                history=_calls(call),
            ),
        )

    async def set_status(
        self,
        job: ActiveJob,
        status: TxStatus,
        *,
        error: str | None = None,
        lease: float,
        check: Attempt | None = None,
    ) -> Written:
        """Move the job to ``status`` (final statuses also release the lease)."""
        final = status in FINAL_STATUSES
        deadline = job.options.deadline
        return await self._write(
            job,
            FencedWrite(
                job.lease_token,
                None if final else lease,
                status=status,
                error=error,
                next_in=None if final else 0.0,
                finish=final,
                deadline_in=deadline if status is TxStatus.SUBMITTED else None,
                qp_history=_calls(check),
            ),
        )

    async def park(
        self,
        job: ActiveJob,
        index: int,
        *,
        attempts: int,
        error: str,
        reason: str,
        call: Attempt | None = None,
    ) -> None:
        """A compensation that no retry can help: the job stays COMPENSATING, released,
        not due (for PARKED_SECONDS), with ``reason`` in ``needs_attention`` until an
        operator cancels or resumes it."""
        _remember(job, index, call)
        await self._write(
            job,
            FencedWrite(
                job.lease_token,
                None,
                next_in=PARKED_SECONDS,
                step=index,
                step_status=int(job.states[index].status),
                attempts=attempts,
                last_error=error,
                history=_calls(call),
                needs_attention=reason,
            ),
        )

    async def defer_prepared(
        self, job: ActiveJob, *, delay: float, error: str, check: Attempt | None = None
    ) -> None:
        """The back-check got no answer: ask again after ``delay``."""
        await self._write(
            job,
            FencedWrite(
                job.lease_token,
                None,
                error=error,
                next_in=delay,
                bump_query_attempts=True,
                qp_history=_calls(check),
            ),
        )
