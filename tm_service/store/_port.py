"""The store port: what the use cases and processors need from storage, and nothing else.

``PostgresStore`` is the production implementation; ``InMemoryStore`` is its twin for
fast tests. Both pass the one contract suite (``tests/contract``), so a behaviour the
processor relies on (status guards, lease-token fencing, due times) is pinned once.

Fencing: every write a processor makes carries the job's ``lease_token``. A write whose
token no longer matches the stored one changes nothing and raises ``LeaseLost``; a
claim bumps the token, so a replica that lost its lease cannot overwrite the new owner.
Times that decide who may act (due, lease expiry) are on the store's clock: the
database's ``now()`` for Postgres, the injected clock in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tm_service.domain import (
    ActiveJob,
    Attempt,
    NewTransaction,
    StepStatus,
    Transaction,
    TxStatus,
)
from tm_service.store._search import TxFilter

__all__ = ["JobStore", "StoredTransaction", "Written"]


class StoredTransaction:
    """A job as stored, with what the use cases need to compare a repeated request."""

    __slots__ = ("fingerprint", "transaction")

    def __init__(self, transaction: Transaction, fingerprint: bytes) -> None:
        self.transaction = transaction
        self.fingerprint = fingerprint


@dataclass(frozen=True, slots=True)
class Written:
    """What a fenced write stored (store clock), for the job's in-memory snapshot."""

    update_time: datetime
    finish_time: datetime | None


class JobStore(Protocol):
    """Storage of jobs, as the use cases and processors call it."""

    async def close(self) -> None: ...

    # -- requests -----------------------------------------------------------------
    async def insert(
        self, new: NewTransaction, *, status: TxStatus, owner: str | None, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """Store a new job; None when the gid is taken. Submitted jobs come back leased."""
        ...

    async def abort_prepared(self, gid: str, reason: str) -> bool:
        """PREPARED → ABORTED; False when the job is not PREPARED."""
        ...

    async def submit_prepared(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """PREPARED → SUBMITTED, leased to ``owner``; None when not PREPARED."""
        ...

    async def get(self, gid: str) -> StoredTransaction | None: ...

    async def list_transactions(
        self,
        *,
        statuses: Sequence[TxStatus],
        limit: int,
        before: tuple[datetime, str] | None,
        owner: str | None = None,
        filter: TxFilter | None = None,
    ) -> list[Transaction]:
        """Jobs newest first (results left out); ``before``: (create_time, gid) last seen;
        ``owner``: only the jobs this principal created; ``filter``: all its conditions."""
        ...

    # -- the sweeper --------------------------------------------------------------
    async def claim_due(self, *, owner: str, lease: float, limit: int) -> list[ActiveJob]:
        """Lease up to ``limit`` due jobs whose lease is free or lapsed (oldest due first)."""
        ...

    async def due_stats(self) -> tuple[int, float]:
        """Jobs due that no replica holds, and seconds since the oldest became due."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; StoreUnavailable when it cannot be reached."""
        ...

    # -- fenced writes of a processor ---------------------------------------------
    async def reload(self, job: ActiveJob, *, owner: str, lease: float) -> ActiveJob | None:
        """Re-read a job this replica holds (after a write whose outcome is unknown).

        Fenced like a write: when the token still matches, the job comes back as stored
        with a new token (an active job leased again to ``owner``); None when another
        replica took it over.
        """
        ...

    async def renew(self, job: ActiveJob, lease: float) -> None: ...

    async def release(self, job: ActiveJob) -> None:
        """Give the job back (shutdown): another replica may take it when it is due."""
        ...

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
        """Record a failed attempt; the job is due again after ``delay``."""
        ...

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
        ...

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
        """A step failed for good: the job fails (or compensates) with ``job_error``."""
        ...

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
        ...

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
        """A compensation no retry can help: COMPENSATING, released, not due, and
        ``needs_attention`` = ``reason`` until Cancel (→ FAILED) or Resume (retry it)."""
        ...

    async def defer_prepared(
        self, job: ActiveJob, *, delay: float, error: str, check: Attempt | None = None
    ) -> None:
        """The back-check got no answer: ask again after ``delay``."""
        ...

    # -- search and retention (issue 13) ------------------------------------------------
    async def count_transactions(
        self, filter: TxFilter, *, at_most: int = 0
    ) -> dict[TxStatus, int]:
        """Jobs matching ``filter`` per status (statuses without jobs left out).

        ``at_most`` > 0: each status is counted up to ``at_most + 1`` only (that value
        means "more"), so a count stays cheap on a table of millions."""
        ...

    async def purge_finished(
        self, *, older_than: float, statuses: Sequence[TxStatus], limit: int, dry_run: bool = False
    ) -> int:
        """Delete up to ``limit`` jobs in ``statuses`` (empty: every final one) finished
        more than ``older_than`` seconds ago (store clock), oldest first, with their steps;
        the number deleted. ``dry_run``: how many match in all, nothing deleted."""
        ...

    def exclusive(self, key: int) -> AbstractAsyncContextManager[bool]:
        """Enter: True when this process now holds the lock ``key`` across replicas
        (Postgres advisory lock), False at once when another holds it."""

    # -- job control (issue 13) ---------------------------------------------------
    async def cancel(self, gid: str, reason: str) -> bool:
        """Cancel an unfinished job, storing ``reason``; False when it is not cancellable.

        PREPARED → ABORTED (error ``reason``); SUBMITTED message → FAILED and SUBMITTED
        saga → COMPENSATING (due at once), both with error ``cancelled: <reason>``.
        COMPENSATING and final jobs are left as they are. The lease token is bumped: a
        replica running the job finds its next fenced write refused (LeaseLost) and
        stops. A SUBMITTED job some replica holds keeps, in ``cancelled_token``, the
        token it had: that replica may still record the result of its call in flight
        (``release_cancelled`` and the step writes, which try it on LeaseLost). A saga
        held somewhere keeps its lease meanwhile, so that its compensation starts once
        the holder has reported (or its lease lapsed; then the step that was running
        is compensated too, since it may have run). Otherwise the lease is released
        and a saga's compensation is claimed by any replica.
        """
        ...

    async def release_cancelled(self, job: ActiveJob, *, in_flight: bool) -> bool:
        """Hand back a job cancelled while this replica held it: the lease is released
        and a saga's compensation due at once. ``in_flight``: a call was cut off, so
        its step may have run. False when the job was not cancelled (another replica
        took it over) or something happened since."""
        ...

    async def lease_changes(self, held: Sequence[tuple[str, int]]) -> dict[str, bool]:
        """Of the jobs held here with these lease tokens, those whose token changed
        (gid → whether by a Cancel of that very token; False: taken over or gone)."""
        ...

    async def resume(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """FAILED job with no step compensated → SUBMITTED, leased to ``owner``.

        Steps that did not succeed are PENDING again with 0 attempts (their last_error
        kept); succeeded steps are untouched. None when the job is not resumable.
        """
        ...
