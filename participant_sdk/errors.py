"""Exceptions of the SDK.

Two families share the root :class:`SteppingError`:

* raised *by step code* to tell the TM how a step ended: :class:`StepFailed` (a
  business failure, never retried) and :class:`RetryLater` (not ready yet). Any other
  exception raised by a step is retried with backoff.
* raised *by the client* when the TM refuses a request: :class:`TmError` and its
  subclasses, built from the status and ``google.rpc.ErrorInfo`` the TM sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from participant_sdk._state import JobState, StepState

__all__ = [
    "GidConflict",
    "InvalidArgument",
    "InvalidState",
    "JobAborted",
    "JobError",
    "JobFailed",
    "JobRolledBack",
    "NotResumable",
    "PermissionDenied",
    "RetryLater",
    "StepFailed",
    "SteppingError",
    "TmError",
    "TmUnavailable",
    "TransactionNotFound",
    "Unauthenticated",
]


class SteppingError(Exception):
    """Root of every exception the SDK defines."""


class StepFailed(SteppingError):
    """A business failure: the step answers ``ABORTED`` and is never retried.

    In message mode the job fails and keeps ``message`` as its error; in saga mode the
    steps already done are compensated.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryLater(SteppingError):
    """The step is not ready yet: it answers ``FAILED_PRECONDITION`` and asks the TM to
    call it again after ``delay`` (sent as a ``google.rpc.RetryInfo`` detail)."""

    def __init__(self, delay: timedelta | float, message: str = "") -> None:
        self.delay = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        self.message = message or f"retry in {self.delay.total_seconds():g}s"
        super().__init__(self.message)


class JobRolledBack(SteppingError):
    """``job.start(conn)`` found the job already resolved as rolled back (the TM's
    back-check ran first): the local transaction was rolled back and must not commit."""


class JobError(SteppingError):
    """A job ended without succeeding (raised by ``job.wait()``); ``state`` is its final
    state, ``error`` the job's error text."""

    def __init__(self, state: JobState) -> None:
        self.state = state
        self.gid = state.gid
        self.error = state.error
        super().__init__(f"job {state.gid} {state.status.value}: {state.error}")


class JobFailed(JobError):
    """The job is FAILED: a step failed for good (``StepFailed``, or its retries ran out);
    in saga mode, the steps done before it were compensated.

    ``step_index`` and ``step_name`` name the failing step (None when the TM named
    none, e.g. a deadline), ``step_error`` is that step's last error.
    """

    def __init__(self, state: JobState) -> None:
        super().__init__(state)
        failing = _failing_step(state)
        self.step_index: int | None = None if failing is None else failing.index
        self.step_name: str | None = None if failing is None else failing.name
        self.step_error: str = "" if failing is None else failing.last_error


class JobAborted(JobError):
    """The job is ABORTED: its 2-phase start was rolled back, or it was cancelled before
    any step ran (``cancel_reason``, ``error``)."""

    @property
    def cancel_reason(self) -> str:
        return self.state.cancel_reason


def _failing_step(state: JobState) -> StepState | None:
    from participant_sdk._state import StepStatus

    failed = [s for s in state.steps if s.status is StepStatus.FAILED]
    if failed:
        return failed[0]
    with_error = [s for s in state.steps if s.last_error]
    return with_error[-1] if with_error else None


class TmError(SteppingError):
    """The TM refused a request, or could not be reached.

    ``code`` is the gRPC status code name (``"NOT_FOUND"``, ...), ``reason`` the
    ``ErrorReason`` name from the TM's ``google.rpc.ErrorInfo`` (``""`` when absent),
    ``metadata`` that detail's metadata (``gid``, ``status``).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})

    @property
    def gid(self) -> str | None:
        """The job the error is about, when the TM named it."""
        return self.metadata.get("gid")

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again later may succeed."""
        return False

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code}{reason}: {self.message}"


class TransactionNotFound(TmError):
    """No job has this gid."""


class GidConflict(TmError):
    """A job with this gid exists with other steps or options."""


class InvalidState(TmError):
    """The job's state does not allow the request (e.g. Abort after Submit)."""

    @property
    def status(self) -> str | None:
        """The job's current status name (``"TRANSACTION_STATUS_SUBMITTED"``, ...)."""
        return self.metadata.get("status")


class NotResumable(InvalidState):
    """Resume: the job is not FAILED, or a saga already compensated some step."""


class InvalidArgument(TmError):
    """A field of the request is invalid; ``field`` names it (``"steps[0].action"``)."""

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        description: str = "",
        code: str = "INVALID_ARGUMENT",
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, reason=reason, metadata=metadata)
        self.field = field
        self.description = description


class Unauthenticated(TmError):
    """The TM knows no credential of this call: send an ``api_key`` (bearer token) or a
    client certificate the TM's auth file names."""


class PermissionDenied(TmError):
    """The principal may not make this call, or not on this job (or no such job: the TM
    gives the same answer)."""


class TmUnavailable(TmError):
    """The TM is unreachable, shutting down or without its database: retry later."""

    @property
    def retryable(self) -> bool:
        return True
