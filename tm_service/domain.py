"""The TM's domain model: jobs (transactions), steps, policies and their states.

Plain dataclasses and enums, free of gRPC and SQL: the use cases, processors and the
store speak these types. Durations are float seconds.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BUCKETS",
    "FINAL_STATUSES",
    "ActiveJob",
    "Endpoint",
    "Mode",
    "NewTransaction",
    "RetryPolicy",
    "StepSpec",
    "StepState",
    "StepStatus",
    "Transaction",
    "TxOptions",
    "TxStatus",
    "bucket_of",
]

# A job's bucket (docs/scaling.md "B. Citus"): the distribution key a sharded database
# routes on, and the unit the sweeper claims per (STEPPING_CLAIM_BY_BUCKET). Chosen once
# per database and never changed: every stored row carries its bucket, and a bucket
# never splits, so it must be at least the number of shards ever wanted.
BUCKETS = 256


def bucket_of(gid: str) -> int:
    """``crc32(utf8(gid)) % BUCKETS``: the same in every replica, version and language
    (migration 0007 computes the same in SQL, ``stepping_bucket(gid)``)."""
    return zlib.crc32(gid.encode()) % BUCKETS


class TxStatus(enum.IntEnum):
    """Job states; values match ``stepping.tm.v1.TransactionStatus``."""

    PREPARED = 1
    SUBMITTED = 2
    SUCCEEDED = 3
    ABORTED = 4
    COMPENSATING = 5
    FAILED = 6


FINAL_STATUSES = frozenset({TxStatus.SUCCEEDED, TxStatus.ABORTED, TxStatus.FAILED})


class StepStatus(enum.IntEnum):
    """Step states; values match ``stepping.tm.v1.StepStatus``."""

    PENDING = 1
    SUCCEEDED = 2
    FAILED = 3
    COMPENSATED = 4


class Mode(enum.IntEnum):
    """Job modes; values match ``stepping.tm.v1.Mode``."""

    MESSAGE = 1
    SAGA = 2


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A unary gRPC method: ``target`` is "host:port", ``method`` "/pkg.Service/Method"."""

    target: str
    method: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: attempt n (1-based) failing waits initial * backoff**(n-1)."""

    initial_interval: float
    backoff_coefficient: float
    maximum_interval: float
    maximum_attempts: int  # 0 = unlimited
    # gRPC code names that end an action at once; () = the TM's default (UNIMPLEMENTED).
    non_retryable_codes: tuple[str, ...] = ()

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        exponent = max(attempt - 1, 0)
        # Cap the exponent so huge attempt counts cannot overflow the float.
        raw = self.initial_interval * self.backoff_coefficient ** min(exponent, 64)
        return min(raw, self.maximum_interval)

    def exhausted(self, attempt: int) -> bool:
        return self.maximum_attempts > 0 and attempt >= self.maximum_attempts


@dataclass(frozen=True, slots=True)
class StepSpec:
    """What a step is: fixed at Prepare/Submit, never changed afterwards."""

    index: int
    name: str
    action: Endpoint
    compensation: Endpoint | None
    payload: bytes
    # Often credentials (authorization, *-token): kept out of reprs, so of logs and tracebacks.
    headers: dict[str, str] = field(repr=False)
    retry_policy: RetryPolicy
    timeout: float


@dataclass(frozen=True, slots=True)
class TxOptions:
    """Options of a job with every default already applied."""

    mode: Mode
    step_timeout: float
    check_prepared_after: float
    deadline: float | None
    concurrent: bool


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """A validated Prepare or Submit request, ready to be stored."""

    gid: str
    steps: tuple[StepSpec, ...]
    options: TxOptions
    query_prepared: Endpoint | None
    database: str
    # Identifies the request's steps and options, so a repeated request can be told
    # from a conflicting one.
    fingerprint: bytes
    trace_context: dict[str, str] = field(default_factory=dict)
    # The principal creating it (None when the TM runs without an auth file).
    owner: str | None = None
    # Business keys (issue 13), validated by the API; part of the fingerprint.
    tags: dict[str, str] = field(default_factory=dict)
    # The wire dialect of its calls: "" (the stepping contract) or "dtm" (issue 17).
    protocol: str = ""


@dataclass(slots=True)
class StepState:
    """A step's progress, as stored."""

    index: int
    name: str
    status: StepStatus
    attempts: int
    last_error: str
    result: bytes | None
    next_attempt_time: datetime | None
    # The last calls made (oldest first, at most HISTORY_LIMIT); reads of one whole job.
    history: tuple[Attempt, ...] = ()


# Calls kept per step (and back-checks per job) in ``history``: the newest ones.
HISTORY_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call the TM made: a step's action or compensation, or the back-check."""

    number: int  # 1 for the first call of this op
    op: str  # contract.OP_ACTION / OP_COMPENSATE / OP_QUERY_PREPARED
    start: datetime
    duration: float  # seconds
    code: int  # the gRPC status code's value (0 = OK)
    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.number,
            "op": self.op,
            "t": self.start.timestamp(),
            "d": round(self.duration, 6),
            "c": self.code,
            "e": self.error,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Attempt:
        return cls(
            int(d["n"]),
            str(d["op"]),
            datetime.fromtimestamp(float(d["t"]), UTC),
            float(d["d"]),
            int(d["c"]),
            str(d.get("e", "")),
        )


@dataclass(slots=True)
class Transaction:
    """A job as clients see it."""

    gid: str
    mode: Mode
    status: TxStatus
    steps: list[StepState]
    error: str
    create_time: datetime
    update_time: datetime
    finish_time: datetime | None
    owner: str | None = None  # the principal that created it
    tags: dict[str, str] = field(default_factory=dict)  # business keys (issue 13)
    # Job control (issue 13): the reason given to Cancel, None when never cancelled.
    cancel_reason: str | None = None
    # Details (GetTransaction, issue 13): filled by reads of one whole job, left
    # empty by lists.
    specs: tuple[StepSpec, ...] = ()
    options: TxOptions | None = None
    deadline_at: datetime | None = None
    trace_context: dict[str, str] = field(default_factory=dict)
    query_prepared: Endpoint | None = None
    needs_attention: str = ""
    # The back-check calls made (prepared jobs; reads of one whole job).
    query_prepared_history: tuple[Attempt, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(slots=True)
class ActiveJob:
    """A job this replica holds the lease of, with everything needed to run it.

    ``lease_token`` fences every write: a replica whose lease was taken over finds
    its writes rejected and stops.
    """

    gid: str
    status: TxStatus
    options: TxOptions
    specs: tuple[StepSpec, ...]
    states: list[StepState]
    query_prepared: Endpoint | None
    database: str
    trace_context: dict[str, str]
    query_attempts: int
    deadline_at: datetime | None
    error: str
    lease_token: int
    # Monotonic time until which the lease surely holds (taken before the write).
    lease_valid_until: float = 0.0
    # As stored by the last write (database clock), for the final snapshot.
    create_time: datetime | None = None
    update_time: datetime | None = None
    finish_time: datetime | None = None
    owner: str | None = None  # the principal that created it
    tags: dict[str, str] = field(default_factory=dict)  # business keys (issue 13)
    protocol: str = ""  # the wire dialect of its calls ("" stepping, "dtm")
    # Cancelled while a replica held it, and that replica never said what its call in
    # flight did (store ``cancelled_token``): a saga compensates that step too.
    cancel_in_flight: bool = False

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def assume(self, other: ActiveJob) -> None:
        """Take every field of ``other`` (the job re-read), keeping this object's identity.

        The engine and waiters hold this object; a reload must update it in place.
        """
        for name in self.__slots__:
            setattr(self, name, getattr(other, name))

    def snapshot(self) -> Transaction:
        """The job as clients see it, from what this replica wrote last."""
        assert self.create_time is not None and self.update_time is not None
        return Transaction(
            gid=self.gid,
            mode=self.options.mode,
            status=self.status,
            steps=[
                StepState(
                    s.index, s.name, s.status, s.attempts, s.last_error, s.result, None, s.history
                )
                for s in self.states
            ],
            error=self.error,
            create_time=self.create_time,
            update_time=self.update_time,
            finish_time=self.finish_time,
            owner=self.owner,
            tags=dict(self.tags),
            specs=self.specs,
            options=self.options,
            deadline_at=self.deadline_at,
            trace_context=dict(self.trace_context),
            query_prepared=self.query_prepared,
        )
