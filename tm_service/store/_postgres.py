"""The Postgres store: every SQL statement of the TM lives here.

Writes that a processor makes while it holds a job's lease are fenced by the job's
``lease_token``: a write whose token no longer matches changes nothing and raises
``LeaseLost``. Writes that touch both a job and one of its steps are single
statements (a data-modifying CTE), so they cost one round trip and are atomic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Interval,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tm_service.domain import (
    ActiveJob,
    NewTransaction,
    StepStatus,
    Transaction,
    TxStatus,
)
from tm_service.errors import LeaseLost, StoreUnavailable
from tm_service.store import _rows
from tm_service.store._schema import ACTIVE_STATUSES, steps, transactions

__all__ = ["PostgresStore", "StoredTransaction"]

_TX = transactions.c
_ST = steps.c


def _after(seconds: float) -> ColumnElement[datetime]:
    """``now() + seconds`` on the database clock (the one clock all replicas share)."""
    return func.now() + bindparam(None, timedelta(seconds=max(seconds, 0.0)), type_=Interval())


class StoredTransaction:
    """A job as stored, with what the use cases need to compare a repeated request."""

    __slots__ = ("fingerprint", "transaction")

    def __init__(self, transaction: Transaction, fingerprint: bytes) -> None:
        self.transaction = transaction
        self.fingerprint = fingerprint


class PostgresStore:
    """The TM's storage on Postgres (SQLAlchemy Core over asyncpg)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Single statements run in autocommit: one round trip, no BEGIN/COMMIT.
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> PostgresStore:
        return cls(
            create_async_engine(normalize_url(url), pool_size=pool_size, max_overflow=pool_size)
        )

    async def close(self) -> None:
        await self.engine.dispose()

    # -- requests -----------------------------------------------------------------
    async def insert(
        self, new: NewTransaction, *, status: TxStatus, owner: str | None, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """Store a new job; None when the gid is taken. Submitted jobs come back leased."""
        submitted = status is TxStatus.SUBMITTED
        values: dict[str, Any] = {
            "gid": new.gid,
            "status": int(status),
            "mode": int(new.options.mode),
            "concurrent": new.options.concurrent,
            "step_timeout": new.options.step_timeout,
            "check_prepared_after": new.options.check_prepared_after,
            "deadline": new.options.deadline,
            "qp_target": new.query_prepared.target if new.query_prepared else None,
            "qp_method": new.query_prepared.method if new.query_prepared else None,
            "database": new.database,
            "fingerprint": new.fingerprint,
            "trace_context": new.trace_context,
            "next_time": func.now() if submitted else _after(new.options.check_prepared_after),
        }
        if submitted:
            values |= {"lease_owner": owner, "lease_token": 1, "lease_expires": _after(lease)}
            if new.options.deadline is not None:
                values["deadline_at"] = _after(new.options.deadline)
        stmt = (
            insert(transactions)
            .values(values)
            .on_conflict_do_nothing(index_elements=["gid"])
            .returning(*transactions.c)
        )
        async with self._begin() as conn:
            row = (await conn.execute(stmt)).mappings().first()
            if row is None:
                return None
            step_rows = _rows.step_rows(new)
            await conn.execute(insert(steps), step_rows)
        full = [_step_defaults(r) for r in step_rows]
        return _rows.active_job(row, full, 0.0), _rows.transaction_from_rows(row, full)

    async def abort_prepared(self, gid: str, reason: str) -> bool:
        """PREPARED → ABORTED; False when the job is not PREPARED."""
        stmt = (
            update(transactions)
            .where(_TX.gid == gid, _TX.status == int(TxStatus.PREPARED))
            .values(
                status=int(TxStatus.ABORTED),
                error=reason,
                lease_token=_TX.lease_token + 1,
                update_time=func.now(),
                finish_time=func.now(),
                lease_owner=None,
                lease_expires=None,
            )
            .returning(_TX.gid)
        )
        async with self._connect(auto=True) as conn:
            return (await conn.execute(stmt)).first() is not None

    async def get(self, gid: str) -> StoredTransaction | None:
        async with self._connect(auto=True) as conn:
            tx = (await conn.execute(select(transactions).where(_TX.gid == gid))).mappings().first()
            if tx is None:
                return None
            rows = (
                (await conn.execute(select(steps).where(_ST.gid == gid).order_by(_ST.idx)))
                .mappings()
                .all()
            )
        return StoredTransaction(_rows.transaction_from_rows(tx, list(rows)), tx["fingerprint"])

    async def list_transactions(
        self,
        *,
        statuses: Sequence[TxStatus],
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[Transaction]:
        """Jobs newest first; ``before`` is the (create_time, gid) of the last one seen."""
        query = select(transactions).order_by(_TX.create_time.desc(), _TX.gid.desc()).limit(limit)
        if statuses:
            query = query.where(_TX.status.in_([int(s) for s in statuses]))
        if before is not None:
            query = query.where(tuple_(_TX.create_time, _TX.gid) < tuple_(*before))
        async with self._connect(auto=True) as conn:
            txs = (await conn.execute(query)).mappings().all()
            by_gid: dict[str, list[Any]] = defaultdict(list)
            if txs:
                cols = [c for c in steps.c if c.name not in ("payload", "result")]
                step_q = (
                    select(*cols)
                    .where(_ST.gid.in_([t["gid"] for t in txs]))
                    .order_by(_ST.gid, _ST.idx)
                )
                for r in (await conn.execute(step_q)).mappings():
                    by_gid[r["gid"]].append(r)
        return [_rows.transaction_from_rows(t, by_gid[t["gid"]], with_results=False) for t in txs]

    # -- the sweeper --------------------------------------------------------------
    async def claim_due(self, *, owner: str, lease: float, limit: int) -> list[ActiveJob]:
        """Lease up to ``limit`` due jobs nobody holds (``FOR UPDATE SKIP LOCKED``)."""
        due = (
            select(_TX.gid)
            .where(
                _TX.status.in_(ACTIVE_STATUSES),
                _TX.next_time <= func.now(),
                or_(_TX.lease_expires.is_(None), _TX.lease_expires < func.now()),
            )
            .order_by(_TX.next_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim = (
            update(transactions)
            .where(_TX.gid.in_(due))
            .values(
                lease_owner=owner,
                lease_token=_TX.lease_token + 1,
                lease_expires=_after(lease),
            )
            .returning(*transactions.c)
        )
        async with self._begin() as conn:
            txs = (await conn.execute(claim)).mappings().all()
            if not txs:
                return []
            rows = (
                (
                    await conn.execute(
                        select(steps)
                        .where(_ST.gid.in_([t["gid"] for t in txs]))
                        .order_by(_ST.gid, _ST.idx)
                    )
                )
                .mappings()
                .all()
            )
        by_gid: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            by_gid[r["gid"]].append(r)
        return [_rows.active_job(t, by_gid[t["gid"]], 0.0) for t in txs]

    # -- fenced writes of a processor ---------------------------------------------
    async def renew(self, job: ActiveJob, lease: float) -> None:
        await self._tx_write(job, lease_expires=_after(lease))

    async def release(self, job: ActiveJob) -> None:
        """Give the job back (shutdown): another replica may take it when it is due."""
        await self._tx_write(job, lease_owner=None, lease_expires=None)

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
    ) -> None:
        """Record a failed attempt; the job is due again after ``delay``."""
        tx_values: dict[str, Any] = {"next_time": _after(delay)}
        if keep_lease:
            tx_values["lease_expires"] = _after(delay + lease)
        else:
            tx_values |= {"lease_owner": None, "lease_expires": None}
        await self._step_write(
            job,
            index,
            {"attempts": attempts, "last_error": error, "next_attempt_time": _after(delay)},
            tx_values,
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
    ) -> None:
        """Record a step's success (or compensation); optionally finish the job too."""
        step_values: dict[str, Any] = {
            "status": int(status),
            "attempts": attempts,
            "next_attempt_time": None,
        }
        if status is StepStatus.SUCCEEDED:
            step_values["result"] = result
        tx_values: dict[str, Any] = {"lease_expires": _after(lease)}
        if finish is not None:
            tx_values |= _finish_values(finish)
        await self._step_write(job, index, step_values, tx_values)

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
    ) -> None:
        """A step failed for good: the job fails (or starts compensating) with ``job_error``.

        ``job_status`` None records the step only (another failure decides the job).
        """
        tx_values: dict[str, Any] = {"lease_expires": _after(lease)}
        if job_status is None:
            pass
        elif job_status is TxStatus.COMPENSATING:
            tx_values |= {"status": int(job_status), "next_time": func.now(), "error": job_error}
        else:
            tx_values |= _finish_values(job_status) | {"error": job_error}
        await self._step_write(
            job,
            index,
            {
                "status": int(StepStatus.FAILED),
                "attempts": attempts,
                "last_error": error,
                "next_attempt_time": None,
            },
            tx_values,
        )

    async def set_status(
        self, job: ActiveJob, status: TxStatus, *, error: str | None = None, lease: float
    ) -> None:
        """Move the job to ``status`` (final statuses also release the lease)."""
        values: dict[str, Any] = {"lease_expires": _after(lease), "next_time": func.now()}
        if status in (TxStatus.SUCCEEDED, TxStatus.FAILED, TxStatus.ABORTED):
            values = _finish_values(status)
        else:
            values["status"] = int(status)
            if status is TxStatus.SUBMITTED and job.options.deadline is not None:
                values["deadline_at"] = _after(job.options.deadline)
        if error is not None:
            values["error"] = error
        await self._tx_write(job, **values)

    async def defer_prepared(self, job: ActiveJob, *, delay: float, error: str) -> None:
        """The back-check got no answer: ask again after ``delay``."""
        await self._tx_write(
            job,
            query_attempts=_TX.query_attempts + 1,
            error=error,
            next_time=_after(delay),
            lease_owner=None,
            lease_expires=None,
        )

    # -- internals ----------------------------------------------------------------
    async def submit_prepared(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """PREPARED → SUBMITTED, leased to ``owner``; None when not PREPARED."""
        stmt = (
            update(transactions)
            .where(_TX.gid == gid, _TX.status == int(TxStatus.PREPARED))
            .values(
                status=int(TxStatus.SUBMITTED),
                lease_owner=owner,
                lease_token=_TX.lease_token + 1,
                lease_expires=_after(lease),
                next_time=func.now(),
                update_time=func.now(),
                error="",
                deadline_at=_TX.deadline * bindparam(None, timedelta(seconds=1), type_=Interval())
                + func.now(),
            )
            .returning(*transactions.c)
        )
        async with self._begin() as conn:
            tx = (await conn.execute(stmt)).mappings().first()
            if tx is None:
                return None
            rows = (
                (await conn.execute(select(steps).where(_ST.gid == gid).order_by(_ST.idx)))
                .mappings()
                .all()
            )
        return _rows.active_job(tx, list(rows), 0.0), _rows.transaction_from_rows(tx, list(rows))

    async def _tx_write(self, job: ActiveJob, **values: Any) -> None:
        stmt = (
            update(transactions)
            .where(_TX.gid == job.gid, _TX.lease_token == job.lease_token)
            .values(update_time=func.now(), **values)
            .returning(_TX.gid)
        )
        async with self._connect(auto=True) as conn:
            if (await conn.execute(stmt)).first() is None:
                raise LeaseLost(job.gid)

    async def _step_write(
        self, job: ActiveJob, index: int, step_values: dict[str, Any], tx_values: dict[str, Any]
    ) -> None:
        fenced = (
            update(transactions)
            .where(_TX.gid == job.gid, _TX.lease_token == job.lease_token)
            .values(update_time=func.now(), **tx_values)
            .returning(_TX.gid)
            .cte("fenced")
        )
        stmt = (
            update(steps)
            .where(and_(_ST.gid == fenced.c.gid, _ST.idx == index))
            .values(**step_values)
            .returning(_ST.idx)
        )
        async with self._connect(auto=True) as conn:
            if (await conn.execute(stmt)).first() is None:
                raise LeaseLost(job.gid)

    def _connect(self, *, auto: bool = False) -> _Guarded:
        return _Guarded((self._auto if auto else self.engine).connect())

    def _begin(self) -> _Guarded:
        return _Guarded(self.engine.begin())

    # -- telemetry ------------------------------------------------------------------
    async def due_stats(self) -> tuple[int, float]:
        """Jobs due that no replica holds, and seconds since the oldest became due (0: none)."""
        waiting = func.now() - func.min(_TX.next_time)
        stmt = select(func.count(), func.coalesce(func.extract("epoch", waiting), 0.0)).where(
            _TX.status.in_(ACTIVE_STATUSES),
            _TX.next_time <= func.now(),
            or_(_TX.lease_expires.is_(None), _TX.lease_expires < func.now()),
        )
        async with self._connect(auto=True) as conn:
            count, age = (await conn.execute(stmt)).one()
        return int(count), float(age)


def _finish_values(status: TxStatus) -> dict[str, Any]:
    return {
        "status": int(status),
        "finish_time": func.now(),
        "lease_owner": None,
        "lease_expires": None,
    }


def _step_defaults(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "attempts": 0, "last_error": "", "result": None, "next_attempt_time": None}


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``postgres://`` URLs; the TM always uses asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class _Guarded:
    """Wraps a connection context so that losing the database maps to StoreUnavailable."""

    def __init__(self, cm: Any) -> None:
        self._cm = cm

    async def __aenter__(self) -> AsyncConnection:
        try:
            conn: AsyncConnection = await self._cm.__aenter__()
        except (OSError, OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from exc
        return conn

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return bool(await self._cm.__aexit__(*exc))
        except (OSError, OperationalError) as err:
            raise StoreUnavailable(f"database unavailable: {err}") from err
