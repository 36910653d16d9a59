"""The Postgres store: every SQL statement of the TM lives in this package.

Writes that a processor makes while it holds a job's lease are fenced by the job's
``lease_token``: a write whose token no longer matches changes nothing and raises
``LeaseLost``. The hot-path writes (new jobs, step results, status changes) are group
committed across jobs (``_batch``, ``_writes``) on a plain asyncpg pool; reads, the
sweeper and the rarer writes use SQLAlchemy Core.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Interval,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tm_service.domain import (
    ActiveJob,
    NewTransaction,
    StepStatus,
    Transaction,
    TxStatus,
)
from tm_service.errors import StoreUnavailable
from tm_service.store import _rows
from tm_service.store._batch import Pending, WriteBatcher
from tm_service.store._schema import ACTIVE_STATUSES, steps, transactions
from tm_service.store._writes import (
    INSERT,
    WRITE,
    FencedWrite,
    Inserted,
    NewJob,
    Written,
    write_batch,
)

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
        # The group-committed writes: one batch at a time, on one connection (a pool
        # of one, so that a lost connection is replaced).
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._batcher = WriteBatcher(self._write_batch, max_batch=512)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> PostgresStore:
        return cls(
            create_async_engine(normalize_url(url), pool_size=pool_size, max_overflow=0),
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.engine.dispose()

    async def _write_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    url = self.engine.url.set(drivername="postgresql")
                    dsn = url.render_as_string(hide_password=False)
                    try:
                        self._pool = await asyncpg.create_pool(
                            dsn,
                            min_size=1,
                            max_size=1,
                            reset=_no_reset,
                            max_inactive_connection_lifetime=0,
                        )
                    except (OSError, asyncpg.PostgresError) as err:
                        raise StoreUnavailable(f"database unavailable: {err}") from err
        return self._pool

    async def _write_batch(self, batch: list[Pending]) -> None:
        pool = await self._write_pool()
        try:
            async with pool.acquire() as conn:
                try:
                    await write_batch(conn, batch)
                except asyncpg.PostgresError:
                    if len(batch) == 1:
                        raise
                    # One bad write must not fail the others: write them one by one.
                    for p in batch:
                        try:
                            await write_batch(conn, [p])
                        except asyncpg.PostgresError as err:
                            if not p.future.done():
                                p.future.set_exception(err)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as err:
            raise StoreUnavailable(f"database unavailable: {err}") from err

    # -- requests -----------------------------------------------------------------
    async def insert(
        self, new: NewTransaction, *, status: TxStatus, owner: str | None, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """Store a new job; None when the gid is taken. Submitted jobs come back leased."""
        made: Inserted | None = await self._batcher.write(
            INSERT, new.gid, NewJob(new, status, owner, lease)
        )
        if made is None:
            return None
        job = _rows.inserted_job(new, status, made.create_time)
        return job, job.snapshot()

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

    # -- fenced writes of a processor (group committed) -------------------------
    async def renew(self, job: ActiveJob, lease: float) -> None:
        await self._fenced(job, FencedWrite(job.lease_token, lease))

    async def release(self, job: ActiveJob) -> None:
        """Give the job back (shutdown): another replica may take it when it is due."""
        await self._fenced(job, FencedWrite(job.lease_token, None))

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
        await self._fenced(
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
    ) -> Written:
        """Record a step's success (or compensation); optionally finish the job too."""
        return await self._fenced(
            job,
            FencedWrite(
                job.lease_token,
                None if finish is not None else lease,
                status=finish,
                finish=finish is not None,
                step=index,
                step_status=int(status),
                attempts=attempts,
                set_result=status is StepStatus.SUCCEEDED,
                result=result,
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
    ) -> Written:
        """A step failed for good: the job fails (or starts compensating) with ``job_error``.

        ``job_status`` None records the step only (another failure decides the job).
        """
        final = job_status is not None and job_status is not TxStatus.COMPENSATING
        return await self._fenced(
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
            ),
        )

    async def set_status(
        self, job: ActiveJob, status: TxStatus, *, error: str | None = None, lease: float
    ) -> Written:
        """Move the job to ``status`` (final statuses also release the lease)."""
        final = status in (TxStatus.SUCCEEDED, TxStatus.FAILED, TxStatus.ABORTED)
        deadline = job.options.deadline
        return await self._fenced(
            job,
            FencedWrite(
                job.lease_token,
                None if final else lease,
                status=status,
                error=error,
                next_in=None if final else 0.0,
                finish=final,
                deadline_in=deadline if status is TxStatus.SUBMITTED else None,
            ),
        )

    async def defer_prepared(self, job: ActiveJob, *, delay: float, error: str) -> None:
        """The back-check got no answer: ask again after ``delay``."""
        await self._fenced(
            job,
            FencedWrite(
                job.lease_token, None, error=error, next_in=delay, bump_query_attempts=True
            ),
        )

    async def _fenced(self, job: ActiveJob, write: FencedWrite) -> Written:
        written: Written = await self._batcher.write(WRITE, job.gid, write)
        job.update_time, job.finish_time = written.update_time, written.finish_time
        return written

    # -- internals ----------------------------------------------------------------
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


async def _no_reset(conn: Any) -> None:
    """The write connections set no session state: skip the reset round trip."""


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
