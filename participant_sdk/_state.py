"""What the TM says about a job, as plain Python values (no protobuf types)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

from google.protobuf import timestamp_pb2
from stepping.tm.v1 import tm_pb2

from participant_sdk._codec import codec_for
from participant_sdk._step import step_definition

__all__ = ["Attempt", "JobState", "JobStatus", "Mode", "StepState", "StepStatus"]

T = TypeVar("T")
R = TypeVar("R")


class Mode(enum.Enum):
    """How a job reacts to a step that fails for good."""

    MESSAGE = "message"
    """Retry each step until it succeeds; a business failure fails the job."""
    SAGA = "saga"
    """Like message, but a failure compensates the steps already done, in reverse."""

    def to_proto(self) -> tm_pb2.Mode.ValueType:
        return tm_pb2.MODE_SAGA if self is Mode.SAGA else tm_pb2.MODE_MESSAGE


class JobStatus(enum.Enum):
    """The state of a job (``TransactionStatus`` without its prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    PREPARED = "PREPARED"
    SUBMITTED = "SUBMITTED"
    SUCCEEDED = "SUCCEEDED"
    ABORTED = "ABORTED"
    COMPENSATING = "COMPENSATING"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        """SUCCEEDED, ABORTED or FAILED: the job will not change any more."""
        return self in (JobStatus.SUCCEEDED, JobStatus.ABORTED, JobStatus.FAILED)


class StepStatus(enum.Enum):
    """The state of one step (``StepStatus`` without its prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    COMPENSATED = "COMPENSATED"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call the TM made for a step (its action or compensation) or a back-check."""

    number: int
    """1 for the first call of this op on this step."""
    op: str
    """``"action"``, ``"compensation"`` or ``"query_prepared"``."""
    start_time: datetime | None
    duration: timedelta
    code: int
    """The call's gRPC status code (0 = OK)."""
    error: str
    """Its error text; empty on success."""

    @classmethod
    def from_proto(cls, a: tm_pb2.Attempt) -> Attempt:
        return cls(
            number=a.number,
            op=tm_pb2.AttemptOp.Name(a.op).removeprefix("ATTEMPT_OP_").lower(),
            start_time=_time(a, "start_time"),
            duration=a.duration.ToTimedelta(),
            code=a.code,
            error=a.error,
        )


@dataclass(frozen=True, slots=True)
class StepState:
    """The progress of one step."""

    index: int
    name: str
    status: StepStatus
    attempts: int
    last_error: str
    result: bytes
    """The raw response of the successful action call."""
    history: tuple[Attempt, ...] = ()
    """The calls the TM made for this step, oldest first (empty in list answers)."""

    def result_as(self, tp: type[T]) -> T:
        """Decodes :attr:`result` as ``tp`` (a protobuf message, dataclass, model)."""
        value: T = codec_for(tp).decode(self.result)
        return value


@dataclass(frozen=True, slots=True)
class JobState:
    """A job as the TM stored it."""

    gid: str
    status: JobStatus
    mode: Mode
    steps: tuple[StepState, ...]
    error: str
    """Why the job failed or was aborted."""
    create_time: datetime | None
    update_time: datetime | None
    finish_time: datetime | None
    owner: str = ""
    """The principal that created the job (empty when the TM runs without auth)."""
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The labels given at ``tm.job(tags=...)``, for searching."""
    needs_attention: str = ""
    """Why the job waits for an operator (empty when it does not)."""
    cancel_reason: str = ""
    """The reason given to :meth:`TmClient.cancel`, if the job was cancelled."""

    @overload
    def step_result(self, step: Callable[..., Awaitable[R]], index: int | None = None) -> R: ...
    @overload
    def step_result(self, step: Callable[..., R], index: int | None = None) -> R: ...
    def step_result(self, step: Callable[..., Any], index: int | None = None) -> Any:
        """The decoded result of a step, typed by the step function's return annotation::

            receipt: Receipt = state.step_result(debit)

        ``index`` picks the step when the job has several with the step's name (default:
        the first one with that name).
        """
        definition = step_definition(step)
        if index is None:
            matches = [s for s in self.steps if s.name == definition.name]
            if not matches:
                raise KeyError(f"job {self.gid} has no step named {definition.name!r}")
            found = matches[0]
        else:
            found = self.steps[index]
        return definition.result.decode(found.result)

    @classmethod
    def from_proto(cls, tx: tm_pb2.Transaction) -> JobState:
        return cls(
            gid=tx.gid,
            status=JobStatus(_strip(tm_pb2.TransactionStatus.Name(tx.status))),
            mode=Mode.SAGA if tx.mode == tm_pb2.MODE_SAGA else Mode.MESSAGE,
            steps=tuple(
                StepState(
                    index=s.index,
                    name=s.name,
                    status=StepStatus(_strip(tm_pb2.StepStatus.Name(s.status))),
                    attempts=s.attempts,
                    last_error=s.last_error,
                    result=s.result,
                    history=tuple(Attempt.from_proto(a) for a in s.history),
                )
                for s in tx.steps
            ),
            error=tx.error,
            create_time=_time(tx, "create_time"),
            update_time=_time(tx, "update_time"),
            finish_time=_time(tx, "finish_time"),
            owner=tx.owner,
            tags=dict(tx.tags),
            needs_attention=tx.needs_attention,
            cancel_reason=tx.cancel_reason,
        )


def _strip(name: str) -> str:
    return name.removeprefix("TRANSACTION_STATUS_").removeprefix("STEP_STATUS_")


def _time(msg: Any, field: str) -> datetime | None:
    if not msg.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    return ts.ToDatetime(tzinfo=UTC)
