"""Errors of the TM's use cases, each with a machine-readable reason.

Mapped to gRPC statuses in exactly one place: ``tm_service.api._errors``.
"""

from __future__ import annotations

from stepping import contract

__all__ = [
    "Busy",
    "Conflict",
    "InvalidArgument",
    "InvalidState",
    "LeaseLost",
    "NotFound",
    "NotResumable",
    "PermissionDenied",
    "ShuttingDown",
    "StoreUnavailable",
    "TmError",
    "Unauthenticated",
]


class TmError(Exception):
    """Root of the errors a TM request can end with."""

    reason = contract.REASON_UNSPECIFIED

    def __init__(self, message: str, *, gid: str = "", metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.gid = gid
        self.metadata = dict(metadata or {})


class InvalidArgument(TmError):
    """A request field is invalid; ``field`` names it (e.g. ``steps[1].action.target``)."""

    reason = contract.REASON_INVALID_ARGUMENT

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class NotFound(TmError):
    """No job has the gid."""

    reason = contract.REASON_TRANSACTION_NOT_FOUND


class Conflict(TmError):
    """A job with the gid exists with other steps or options."""

    reason = contract.REASON_GID_CONFLICT


class InvalidState(TmError):
    """The job's state forbids the request (e.g. Abort after Submit)."""

    reason = contract.REASON_INVALID_STATE


class NotResumable(TmError):
    """Resume: the job is not FAILED, or a saga already compensated a step."""

    reason = contract.REASON_NOT_RESUMABLE


class ShuttingDown(TmError):
    """The TM is stopping; the client should retry (on another replica)."""

    reason = contract.REASON_SHUTTING_DOWN


class StoreUnavailable(TmError):
    """The database could not be reached."""

    reason = contract.REASON_STORE_UNAVAILABLE


class Unauthenticated(TmError):
    """The request carries no credential the auth file knows."""

    reason = contract.REASON_UNAUTHENTICATED


class PermissionDenied(TmError):
    """The principal may not make this call, or not on this job (or the job is unknown:
    the same answer, so a gid's existence does not leak)."""

    reason = contract.REASON_PERMISSION_DENIED


class LeaseLost(Exception):
    """This replica's lease on a job was taken over; it must stop working on it."""


class Busy(TmError):
    """A per-process limit is reached (e.g. ``max_watches``); retry later or elsewhere."""

    reason = contract.REASON_UNSPECIFIED


class SearchTooSlow(TmError):
    """A List or Count ran past ``search_timeout_seconds`` and was stopped."""


class BusinessFailure(TmError):
    """A job a caller waited for failed (DTM's WaitResult: ABORTED "FAILURE")."""
