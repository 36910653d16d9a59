"""An in-memory ``JobStore``: the Postgres store's twin for fast, deterministic tests.

It keeps the same rules as the SQL (status guards, lease-token fencing, due times, the
ordering of lists and claims) and passes the same contract suite (``tests/contract``).
Its "database clock" is the injected ``Clock``, so a fake clock drives leases and due
times. Every read returns copies: nothing a caller holds aliases the stored rows.
Single event loop only; it is not a production store (nothing survives the process).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tm_service.clock import Clock, SystemClock
from tm_service.domain import (
    HISTORY_LIMIT,
    ActiveJob,
    Attempt,
    Endpoint,
    Mode,
    NewTransaction,
    StepSpec,
    StepState,
    StepStatus,
    Transaction,
    TxOptions,
    TxStatus,
    bucket_of,
)
from tm_service.errors import LeaseLost
from tm_service.store._fenced import FencedWrites
from tm_service.store._port import StoredTransaction, Written
from tm_service.store._schema import ACTIVE_STATUSES
from tm_service.store._search import TxFilter, final_statuses, matches
from tm_service.store._writes import FencedWrite

__all__ = ["InMemoryStore"]


@dataclass
class _Row:
    """One job: the transactions row and its step rows."""

    gid: str
    status: TxStatus
    options: TxOptions
    specs: tuple[StepSpec, ...]
    states: list[StepState]
    query_prepared: Endpoint | None
    database: str
    fingerprint: bytes
    trace_context: dict[str, str]
    next_time: datetime
    create_time: datetime
    update_time: datetime
    deadline_at: datetime | None = None
    finish_time: datetime | None = None
    error: str = ""
    query_attempts: int = 0
    lease_owner: str | None = None
    lease_token: int = 0
    lease_expires: datetime | None = None
    owner: str | None = None  # the principal that created it
    tags: dict[str, str] = field(default_factory=dict)  # business keys (issue 13)
    needs_attention: str = ""  # set by the engine (control); filtered by lists
    cancel_reason: str | None = None
    qp_history: tuple[Attempt, ...] = ()  # the back-check calls
    protocol: str = ""  # the wire dialect of its calls
    cancelled_token: int | None = None  # see JobStore.cancel
    bucket: int = 0  # bucket_of(gid), as the Postgres store stores it
    # Writes seen, for tests that count them (the Postgres store's commits).
    writes: int = field(default=0, compare=False)

    def lease_to(self, owner: str, lease: float, now: datetime) -> None:
        """A new lease: ``owner`` holds the job for ``lease`` seconds, with a fresh
        fencing token (every earlier holder's writes are refused from now on)."""
        self.lease_owner = owner
        self.lease_token += 1
        self.lease_expires = _after(now, lease)

    def transaction(self, *, with_results: bool = True) -> Transaction:
        return Transaction(
            gid=self.gid,
            mode=self.options.mode,
            status=self.status,
            steps=[
                StepState(
                    s.index,
                    s.name,
                    s.status,
                    s.attempts,
                    s.last_error,
                    s.result if with_results else None,
                    s.next_attempt_time,
                    s.history if with_results else (),
                )
                for s in self.states
            ],
            error=self.error,
            create_time=self.create_time,
            update_time=self.update_time,
            finish_time=self.finish_time,
            owner=self.owner,
            tags=dict(self.tags),
            cancel_reason=self.cancel_reason,
            **(self._details() if with_results else {}),
        )

    def _details(self) -> dict[str, Any]:
        return {
            "specs": self.specs,
            "options": self.options,
            "deadline_at": self.deadline_at,
            "trace_context": dict(self.trace_context),
            "query_prepared": self.query_prepared,
            "query_prepared_history": self.qp_history,
            "needs_attention": self.needs_attention,
        }

    def active_job(self) -> ActiveJob:
        return ActiveJob(
            gid=self.gid,
            status=self.status,
            options=self.options,
            specs=self.specs,
            states=[
                StepState(
                    s.index, s.name, s.status, s.attempts, s.last_error, None, s.next_attempt_time
                )
                for s in self.states
            ],
            query_prepared=self.query_prepared,
            database=self.database,
            trace_context=dict(self.trace_context),
            query_attempts=self.query_attempts,
            deadline_at=self.deadline_at,
            error=self.error,
            lease_token=self.lease_token,
            create_time=self.create_time,
            update_time=self.update_time,
            finish_time=self.finish_time,
            owner=self.owner,
            tags=dict(self.tags),
            protocol=self.protocol,
            cancel_in_flight=self.cancelled_token is not None,
        )


def _apply_step(state: StepState, write: FencedWrite, now: datetime) -> None:
    """The step columns of a fenced write."""
    state.status = StepStatus(write.step_status)
    state.attempts = write.attempts
    if write.last_error is not None:
        state.last_error = write.last_error
    if write.set_result:
        state.result = write.result
    state.next_attempt_time = _after(now, write.step_next_in)
    if write.history is not None:
        state.history = _appended(state.history, write.history)


def _appended(stored: tuple[Attempt, ...], new: str) -> tuple[Attempt, ...]:
    """``stored`` with the calls of a write's JSON appended, the newest HISTORY_LIMIT."""
    calls = tuple(Attempt.from_json(d) for d in json.loads(new))
    return (stored + calls)[-HISTORY_LIMIT:]


def _after(now: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else now + timedelta(seconds=max(seconds, 0.0))


class InMemoryStore(FencedWrites):
    """Jobs in a dict, with the Postgres store's semantics (a ``JobStore``)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._rows: dict[str, _Row] = {}
        self._last_now: datetime | None = None
        self.closed = False
        self._exclusive: set[int] = set()  # keys held (``exclusive``)

    def _now(self) -> datetime:
        # Postgres' now() is distinct per transaction; keep ours strictly increasing so
        # (create_time, gid) ordering and "newer than" checks behave the same.
        now = self._clock.now()
        if self._last_now is not None and now <= self._last_now:
            now = self._last_now + timedelta(microseconds=1)
        self._last_now = now
        return now

    async def close(self) -> None:
        self.closed = True

    # -- requests -----------------------------------------------------------------
    async def insert(
        self, new: NewTransaction, *, status: TxStatus, owner: str | None, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        if new.gid in self._rows:
            return None
        now = self._now()
        submitted = status is TxStatus.SUBMITTED
        deadline = new.options.deadline
        row = _Row(
            gid=new.gid,
            status=status,
            options=new.options,
            specs=new.steps,
            states=[
                StepState(s.index, s.name, StepStatus.PENDING, 0, "", None, None) for s in new.steps
            ],
            query_prepared=new.query_prepared,
            database=new.database,
            fingerprint=new.fingerprint,
            trace_context=dict(new.trace_context),
            next_time=now
            if submitted
            else now + timedelta(seconds=new.options.check_prepared_after),
            create_time=now,
            update_time=now,
            deadline_at=_after(now, deadline) if submitted else None,
            lease_owner=owner if submitted else None,
            lease_token=1 if submitted else 0,
            lease_expires=_after(now, lease) if submitted else None,
            owner=new.owner,
            tags=dict(new.tags),
            protocol=new.protocol,
            bucket=bucket_of(new.gid),
        )
        self._rows[new.gid] = row
        job = row.active_job()
        return job, job.snapshot()

    async def abort_prepared(self, gid: str, reason: str) -> bool:
        row = self._rows.get(gid)
        if row is None or row.status is not TxStatus.PREPARED:
            return False
        now = self._now()
        row.status = TxStatus.ABORTED
        row.error = reason
        row.lease_token += 1
        row.update_time = row.finish_time = now
        row.lease_owner = row.lease_expires = None
        return True

    async def submit_prepared(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        row = self._rows.get(gid)
        if row is None or row.status is not TxStatus.PREPARED:
            return None
        now = self._now()
        row.status = TxStatus.SUBMITTED
        row.lease_to(owner, lease, now)
        row.next_time = row.update_time = now
        row.error = ""
        row.deadline_at = _after(now, row.options.deadline)
        return row.active_job(), row.transaction()

    async def get(self, gid: str) -> StoredTransaction | None:
        row = self._rows.get(gid)
        if row is None:
            return None
        return StoredTransaction(row.transaction(), row.fingerprint)

    async def list_transactions(
        self,
        *,
        statuses: Sequence[TxStatus],
        limit: int,
        before: tuple[datetime, str] | None,
        owner: str | None = None,
        filter: TxFilter | None = None,
    ) -> list[Transaction]:
        rows = [
            r
            for r in self._rows.values()
            if (not statuses or r.status in statuses) and (owner is None or r.owner == owner)
        ]
        if filter is not None:
            rows = [r for r in rows if _matches(filter, r)]
        if before is not None:
            rows = [r for r in rows if (r.create_time, r.gid) < before]
        rows.sort(key=lambda r: (r.create_time, r.gid), reverse=True)
        return [r.transaction(with_results=False) for r in rows[:limit]]

    # -- the sweeper --------------------------------------------------------------
    def _due(self, now: datetime) -> list[_Row]:
        return [
            r
            for r in self._rows.values()
            if int(r.status) in ACTIVE_STATUSES
            and r.next_time <= now
            and (r.lease_expires is None or r.lease_expires < now)
        ]

    async def claim_due(self, *, owner: str, lease: float, limit: int) -> list[ActiveJob]:
        now = self._now()
        due = sorted(self._due(now), key=lambda r: r.next_time)[:limit]
        for r in due:
            r.lease_to(owner, lease, now)
        return [r.active_job() for r in due]

    async def due_stats(self) -> tuple[int, float]:
        now = self._now()
        due = self._due(now)
        if not due:
            return 0, 0.0
        return len(due), (now - min(r.next_time for r in due)).total_seconds()

    async def ping(self) -> None:
        return None

    async def reload(self, job: ActiveJob, *, owner: str, lease: float) -> ActiveJob | None:
        row = self._rows.get(job.gid)
        if row is None or row.lease_token != job.lease_token:
            return None
        now = self._now()
        row.lease_token += 1
        active = int(row.status) in ACTIVE_STATUSES
        row.lease_owner = owner if active else None
        row.lease_expires = _after(now, lease) if active else None
        return row.active_job()

    # -- the one fenced write -------------------------------------------------------
    async def _fenced(self, job: ActiveJob, write: FencedWrite) -> Written:
        row = self._rows.get(job.gid)
        if row is None or row.lease_token != write.token:
            raise LeaseLost(job.gid)
        now = self._now()
        if write.status is not None:
            row.status = TxStatus(write.status)
        if write.error is not None:
            row.error = write.error
        if write.lease is None:
            row.lease_owner = None
        row.lease_expires = _after(now, write.lease)
        if write.next_in is not None:
            row.next_time = now + timedelta(seconds=max(write.next_in, 0.0))
        if write.finish:
            row.finish_time = now
        if write.deadline_in is not None:
            row.deadline_at = _after(now, write.deadline_in)
        if write.bump_query_attempts:
            row.query_attempts += 1
        row.update_time = now
        if write.step is not None:
            _apply_step(row.states[write.step], write, now)
        if write.qp_history is not None:
            row.qp_history = _appended(row.qp_history, write.qp_history)
        if write.needs_attention is not None:
            row.needs_attention = write.needs_attention
        row.writes += 1
        return Written(row.update_time, row.finish_time)

    async def _after_cancel(self, job: ActiveJob, write: FencedWrite, *, known: bool) -> bool:
        row = self._rows.get(job.gid)
        if (
            row is None
            or row.cancel_reason is None
            or row.cancelled_token != write.token
            or row.lease_token != write.token + 1
        ):
            return False
        now = self._now()
        row.lease_owner = row.lease_expires = None
        row.next_time = row.update_time = now
        if known:
            row.cancelled_token = None
        if write.step is not None and row.states[write.step].status is StepStatus.PENDING:
            _apply_step(row.states[write.step], write, now)
        row.writes += 1
        return True

    async def lease_changes(self, held: Sequence[tuple[str, int]]) -> dict[str, bool]:
        changed: dict[str, bool] = {}
        for gid, token in held:
            row = self._rows.get(gid)
            if row is None or row.lease_token != token:
                changed[gid] = row is not None and row.cancelled_token == token
        return changed

    # -- job control (issue 13) ---------------------------------------------------
    async def cancel(self, gid: str, reason: str) -> bool:
        row = self._rows.get(gid)
        parked = row is not None and row.status is TxStatus.COMPENSATING and row.needs_attention
        if row is None or not (parked or row.status in (TxStatus.PREPARED, TxStatus.SUBMITTED)):
            return False
        now = self._now()
        if row.status is TxStatus.PREPARED:
            row.status, row.error = TxStatus.ABORTED, reason
        elif parked:  # an operator gives up on the compensation that cannot run
            row.status = TxStatus.FAILED
            row.error = f"cancelled: {reason} (left undone: {row.needs_attention})"
            row.needs_attention = ""
        else:
            saga = row.options.mode is Mode.SAGA
            row.status = TxStatus.COMPENSATING if saga else TxStatus.FAILED
            row.error = f"cancelled: {reason}"
            if row.lease_owner is not None:  # running somewhere: a call may be in flight
                row.cancelled_token = row.lease_token
        row.cancel_reason = reason
        row.lease_token += 1
        if row.cancelled_token is None or row.status is not TxStatus.COMPENSATING:
            row.lease_owner = row.lease_expires = None
        row.next_time = row.update_time = now
        if row.status is not TxStatus.COMPENSATING:
            row.finish_time = now
        return True

    async def resume(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        row = self._rows.get(gid)
        if row is not None and row.status is TxStatus.COMPENSATING and row.needs_attention:
            # A parked compensation, fixed meanwhile: try it again now.
            now = self._now()
            row.needs_attention = ""
            row.lease_to(owner, lease, now)
            row.next_time = row.update_time = now
            return row.active_job(), row.transaction()
        if row is None or row.status is not TxStatus.FAILED:
            return None
        if any(s.status is StepStatus.COMPENSATED for s in row.states):
            return None
        now = self._now()
        row.status = TxStatus.SUBMITTED
        row.error = ""
        row.cancel_reason = row.cancelled_token = None
        row.finish_time = None
        row.lease_to(owner, lease, now)
        row.next_time = row.update_time = now
        row.deadline_at = _after(now, row.options.deadline)
        for s in row.states:
            if s.status is not StepStatus.SUCCEEDED:
                s.status, s.attempts, s.next_attempt_time = StepStatus.PENDING, 0, None
        return row.active_job(), row.transaction()

    # -- for tests ----------------------------------------------------------------------
    def lease_of(self, gid: str) -> tuple[str | None, int, datetime | None]:
        """(owner, token, expiry) of a job's lease, as stored."""
        row = self._rows[gid]
        return row.lease_owner, row.lease_token, row.lease_expires

    def next_time(self, gid: str) -> datetime:
        return self._rows[gid].next_time

    def writes(self, gid: str) -> int:
        return self._rows[gid].writes

    def snapshot(self) -> dict[str, Transaction]:
        """Every job as stored (deep copies)."""
        return {gid: copy.deepcopy(r.transaction()) for gid, r in self._rows.items()}

    # -- search and retention (issue 13) ------------------------------------------------
    async def count_transactions(
        self, filter: TxFilter, *, at_most: int = 0
    ) -> dict[TxStatus, int]:
        counts: dict[TxStatus, int] = {}
        for r in self._rows.values():
            if _matches(filter, r):
                counts[r.status] = counts.get(r.status, 0) + 1
        if at_most > 0:
            counts = {s: min(n, at_most + 1) for s, n in counts.items()}
        return counts

    async def purge_finished(
        self, *, older_than: float, statuses: Sequence[TxStatus], limit: int, dry_run: bool = False
    ) -> int:
        cut = self._now() - timedelta(seconds=older_than)
        wanted = final_statuses(statuses)
        old = sorted(
            (
                r
                for r in self._rows.values()
                if r.status in wanted and r.finish_time is not None and r.finish_time < cut
            ),
            key=lambda r: r.finish_time or cut,
        )
        if dry_run:
            return len(old)
        for r in old[:limit]:
            del self._rows[r.gid]
        return min(len(old), limit)

    @asynccontextmanager
    async def exclusive(self, key: int) -> AsyncIterator[bool]:
        held = key in self._exclusive
        self._exclusive.add(key)
        try:
            yield not held
        finally:
            if not held:
                self._exclusive.discard(key)

    def backdate_finish(self, gid: str, seconds: float) -> None:
        """For tests: the job finished ``seconds`` earlier than stored."""
        row = self._rows[gid]
        assert row.finish_time is not None
        row.finish_time -= timedelta(seconds=seconds)


def _matches(f: TxFilter, r: _Row) -> bool:
    return matches(
        f,
        gid=r.gid,
        status=r.status,
        mode=r.options.mode,
        tags=r.tags,
        create_time=r.create_time,
        finish_time=r.finish_time,
        error=r.error,
        needs_attention=r.needs_attention,
        owner=r.owner,
        specs=r.specs,
        states=r.states,
    )
