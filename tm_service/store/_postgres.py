"""The Postgres store: every SQL statement of the TM lives in this package.

Writes that a processor makes while it holds a job's lease are fenced by the job's
``lease_token``: a write whose token no longer matches changes nothing and raises
``LeaseLost``. The hot-path writes (new jobs, step results, status changes) are group
committed across jobs (``_batch``, ``_writes``) on a plain asyncpg pool; reads, the
sweeper and the rarer writes use SQLAlchemy Core.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    SmallInteger,
    Text,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tm_service.domain import (
    BUCKETS,
    ActiveJob,
    Mode,
    NewTransaction,
    StepStatus,
    Transaction,
    TxStatus,
    bucket_of,
)
from tm_service.errors import SearchTooSlow
from tm_service.store import _rows
from tm_service.store._batch import Pending, WriteBatcher
from tm_service.store._fenced import FencedWrites
from tm_service.store._migrate import upgrade
from tm_service.store._port import StoredTransaction, Written
from tm_service.store._schema import ACTIVE_STATUSES, steps, transactions
from tm_service.store._search import TxFilter, conditions, final_statuses
from tm_service.store._unavailable import ReportsUnavailable, is_unavailable, map_unavailable
from tm_service.store._writes import (
    INSERT,
    WRITE,
    FencedWrite,
    Inserted,
    NewJob,
    after_cancel,
    write_batch,
)

__all__ = ["PostgresStore", "StoredTransaction", "plan_bucket_claims"]

_TX = transactions.c
_ST = steps.c


# SQLSTATE of a statement stopped by statement_timeout (or a cancel request).
_QUERY_CANCELED = "57014"


def _after(seconds: float) -> ColumnElement[datetime]:
    """``now() + seconds`` on the database clock (the one clock all replicas share)."""
    return func.now() + bindparam(None, timedelta(seconds=max(seconds, 0.0)), type_=Interval())


def _leased_to(owner: str, lease: float) -> dict[str, Any]:
    """The columns of a new lease: ``owner`` holds the job for ``lease`` seconds, with a
    fresh fencing token (every earlier holder's writes are refused from now on)."""
    return {
        "lease_owner": owner,
        "lease_token": _TX.lease_token + 1,
        "lease_expires": _after(lease),
    }


# -- the sweeper's claim --------------------------------------------------------------
def _is_due() -> tuple[ColumnElement[bool], ...]:
    """Due and nobody's: active, its time has come, no live lease."""
    return (
        _TX.status.in_(ACTIVE_STATUSES),
        _TX.next_time <= func.now(),
        or_(_TX.lease_expires.is_(None), _TX.lease_expires < func.now()),
    )


def _claim(owner: str, lease: float, limit: int) -> Any:
    """Lease up to ``limit`` due jobs, oldest first."""
    due = (
        select(_TX.gid)
        .where(*_is_due())
        .order_by(_TX.next_time)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(transactions)
        .where(_TX.gid.in_(due))
        .values(**_leased_to(owner, lease))
        .returning(*transactions.c)
    )


def _claim_bucket() -> Any:
    """Lease up to ``:n`` due jobs of ``:in_bucket``, oldest first, to ``:claimer`` for
    ``:lease_for`` (a single-shard statement: every part says ``bucket = $b``). Built once.

    The locked rows are a CTE the update joins, so they are picked once: as ``gid IN
    (subquery)`` joined to the bucket index, the locking subquery was re-run per row and
    claimed more than ``n`` (seen in tests/contract/test_buckets.py).
    """
    bucket = bindparam("in_bucket", type_=SmallInteger())
    due = (
        select(_TX.gid)
        .where(*_is_due(), _TX.bucket == bucket)
        .order_by(_TX.next_time)
        .limit(bindparam("n", type_=Integer()))
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    return (
        update(transactions)
        .where(_TX.bucket == bucket, _TX.gid == due.c.gid)
        .values(
            lease_owner=bindparam("claimer", type_=Text()),
            lease_token=_TX.lease_token + 1,
            lease_expires=func.now() + bindparam("lease_for", type_=Interval()),
        )
        .returning(*transactions.c)
    )


_CLAIM_BUCKET = _claim_bucket()


async def _with_steps(conn: AsyncConnection, txs: Sequence[Any]) -> list[ActiveJob]:
    """The claimed jobs with their steps: one read for all of them."""
    if not txs:
        return []
    rows = (
        (
            await conn.execute(
                select(steps).where(_ST.gid.in_([t["gid"] for t in txs])).order_by(_ST.gid, _ST.idx)
            )
        )
        .mappings()
        .all()
    )
    by_gid: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_gid[r["gid"]].append(r)
    return [_rows.active_job(t, by_gid[t["gid"]], 0.0) for t in txs]


# The due buckets and their due jobs (on the due index; no locks: it may span shards).
_DUE_BUCKETS = select(_TX.bucket, func.count()).where(*_is_due()).group_by(_TX.bucket)
# A bucket's share of a claim: the room spread over up to 16 buckets, but at least 8
# jobs (a statement each): room for 64 jobs with a backlog in every bucket is 8 buckets'
# 8 jobs now and the next 8 buckets at the next sweep.
_SPREAD = 16
_MIN_SHARE = 8
# While a backlog drains, claims follow each other fast: the counts of the last one,
# minus what it took, plan the next for up to this long (a claim that got less than it
# planned, or less than its room, counts again at the next).
_COUNTS_FOR = 1.0


def plan_bucket_claims(
    due: Mapping[int, int], room: int, *, start: int, share: int
) -> list[tuple[int, int]]:
    """How many jobs to claim from which bucket: (bucket, n) in claim order.

    The due buckets (``due``: bucket -> jobs due) in turn from ``start``, wrapping
    around, each take up to ``share`` until the room is used; when every due bucket has
    had its turn and room is left, those with more due share it equally. So a bucket's
    backlog takes at most one share while other buckets' due jobs wait, every bucket
    with a few due jobs takes them all, and the room is used whenever enough is due.
    """
    order = sorted((b for b, n in due.items() if n > 0), key=lambda b: (b - start) % BUCKETS)
    take: dict[int, int] = {}
    left = room
    for b in order:
        if left <= 0:
            break
        take[b] = min(due[b], max(1, share), left)
        left -= take[b]
    more = [b for b in take if take[b] < due[b]]
    while left > 0 and more:
        extra = max(1, left // len(more))
        for b in more:
            n = min(extra, due[b] - take[b], left)
            take[b] += n
            left -= n
        more = [b for b in more if take[b] < due[b]]
    return list(take.items())


class PostgresStore(FencedWrites, ReportsUnavailable):
    """The TM's storage on Postgres (SQLAlchemy Core over asyncpg); a ``JobStore``.

    Set ``on_unavailable`` to hear at once when an operation finds the database gone.
    """

    def __init__(
        self, engine: AsyncEngine, *, claim_by_bucket: bool = False, search_timeout: float = 0.0
    ) -> None:
        self.engine = engine
        # STEPPING_CLAIM_BY_BUCKET: the sweeper claims per bucket (``_claim_per_bucket``).
        self._claim_by_bucket = claim_by_bucket
        self._search_timeout = search_timeout
        self._next_bucket: dict[str, int] = {}  # per owner: where its next claim starts
        # Per owner: when its last full claim counted the due buckets, and what is left.
        self._due_counts: dict[str, tuple[float, dict[int, int]]] = {}
        # Single statements run in autocommit: one round trip, no BEGIN/COMMIT.
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        # The group-committed writes: one batch at a time, on one connection (a pool
        # of one, so that a lost connection is replaced).
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._batcher = WriteBatcher(self._write_batch, max_batch=512)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        claim_by_bucket: bool = False,
        search_timeout: float = 0.0,
    ) -> PostgresStore:
        return cls(
            create_async_engine(normalize_url(url), pool_size=pool_size, max_overflow=0),
            claim_by_bucket=claim_by_bucket,
            search_timeout=search_timeout,
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
                    self._pool = await asyncpg.create_pool(
                        dsn,
                        # No floor: asyncpg would reconnect it in the background and log
                        # a traceback per attempt while the database is away.
                        min_size=0,
                        max_size=1,
                        reset=_no_reset,
                        max_inactive_connection_lifetime=0,
                    )
        return self._pool

    async def _write_batch(self, batch: list[Pending]) -> None:
        # Errors fail the batch's futures; each caller's operation maps them (map_unavailable).
        pool = await self._write_pool()
        async with pool.acquire() as conn:
            try:
                await write_batch(conn, batch)
            except asyncpg.PostgresError as exc:
                if len(batch) == 1 or is_unavailable(exc):
                    raise
                # One bad write must not fail the others: write them one by one.
                for p in batch:
                    try:
                        await write_batch(conn, [p])
                    except asyncpg.PostgresError as err:
                        if not p.future.done():
                            p.future.set_exception(err)

    # -- requests -----------------------------------------------------------------
    @map_unavailable
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

    @map_unavailable
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

    @map_unavailable
    async def submit_prepared(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """PREPARED → SUBMITTED, leased to ``owner``; None when not PREPARED."""
        stmt = (
            update(transactions)
            .where(_TX.gid == gid, _TX.status == int(TxStatus.PREPARED))
            .values(
                status=int(TxStatus.SUBMITTED),
                **_leased_to(owner, lease),
                next_time=func.now(),
                update_time=func.now(),
                error="",
                deadline_at=_TX.deadline * bindparam(None, timedelta(seconds=1), type_=Interval())
                + func.now(),
            )
            .returning(*transactions.c)
        )
        found = await self._update_one(stmt, gid)
        if found is None:
            return None
        tx, rows = found
        return _rows.active_job(tx, rows, 0.0), _rows.transaction_from_rows(tx, rows)

    @map_unavailable
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

    @map_unavailable
    async def list_transactions(
        self,
        *,
        statuses: Sequence[TxStatus],
        limit: int,
        before: tuple[datetime, str] | None,
        owner: str | None = None,
        filter: TxFilter | None = None,
    ) -> list[Transaction]:
        """Jobs newest first; ``before`` is the (create_time, gid) of the last one seen."""
        query = select(transactions).order_by(_TX.create_time.desc(), _TX.gid.desc()).limit(limit)
        if owner is not None:
            query = query.where(_TX.owner == owner)
        if statuses:
            query = query.where(_TX.status.in_([int(s) for s in statuses]))
        if filter is not None:
            query = query.where(*conditions(filter))
        if before is not None:
            query = query.where(tuple_(_TX.create_time, _TX.gid) < tuple_(*before))
        async with self._searching() as conn:
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
    @map_unavailable
    async def claim_due(self, *, owner: str, lease: float, limit: int) -> list[ActiveJob]:
        """Lease up to ``limit`` due jobs nobody holds (``FOR UPDATE SKIP LOCKED``): the
        oldest due first, or per bucket when ``claim_by_bucket`` is on."""
        if self._claim_by_bucket:
            return await self._claim_per_bucket(owner=owner, lease=lease, limit=limit)
        async with self._begin() as conn:
            txs = list((await conn.execute(_claim(owner, lease, limit))).mappings().all())
            return await _with_steps(conn, txs)

    async def _claim_per_bucket(self, *, owner: str, lease: float, limit: int) -> list[ActiveJob]:
        """The claim as a sharded database needs it (docs/scaling.md, "The sweeper's
        claim, per bucket"): which buckets have due jobs (one aggregate, no locks), then
        one claim per due bucket (``AND bucket = $b``: a single-shard statement), each
        bucket its share of ``limit`` (``plan_bucket_claims``), starting where this
        owner's last claim stopped (at first: at a bucket derived from the owner, so
        replicas start apart)."""
        counted = self._due_counts.pop(owner, None)
        if counted is None or time.monotonic() - counted[0] > _COUNTS_FOR:
            async with self._connect(auto=True) as conn:
                rows = (await conn.execute(_DUE_BUCKETS)).all()
            counted = (time.monotonic(), {int(b): int(n) for b, n in rows})
        due = counted[1]
        start = self._next_bucket.get(owner, bucket_of(owner))
        share = max(_MIN_SHARE, limit // _SPREAD)
        plan = plan_bucket_claims(due, limit, start=start, share=share)
        if not plan:
            return []
        self._next_bucket[owner] = (plan[-1][0] + 1) % BUCKETS
        # One transaction (one commit on one node); jobs another replica took since the
        # count are skipped, and the room they leave waits for the next sweep.
        args = {"claimer": owner, "lease_for": timedelta(seconds=max(lease, 0.0))}
        short = False
        async with self._begin() as conn:
            txs: list[Any] = []
            for bucket, n in plan:
                params = {**args, "in_bucket": bucket, "n": n}
                got = (await conn.execute(_CLAIM_BUCKET, params)).mappings().all()
                txs += got
                due[bucket] -= len(got)
                short = short or len(got) < n
            jobs = await _with_steps(conn, txs)
        if not short and len(jobs) == limit:
            self._due_counts[owner] = counted
        return jobs

    @map_unavailable
    async def reload(self, job: ActiveJob, *, owner: str, lease: float) -> ActiveJob | None:
        """Re-read a job this replica holds, with a new token; None when it lost the lease."""
        active = _TX.status.in_(ACTIVE_STATUSES)
        stmt = (
            update(transactions)
            .where(_TX.gid == job.gid, _TX.lease_token == job.lease_token)
            .values(
                lease_token=_TX.lease_token + 1,
                lease_owner=case((active, owner), else_=None),
                lease_expires=case((active, _after(lease)), else_=None),
            )
            .returning(*transactions.c)
        )
        found = await self._update_one(stmt, job.gid)
        return None if found is None else _rows.active_job(*found, 0.0)

    @map_unavailable
    async def ping(self) -> None:
        """One round trip to the database; StoreUnavailable when it cannot be reached.

        On the SQLAlchemy pool, not the write connection: pinging there was measured to
        break up the group-committed batches (10 commits for 48 jobs became 110).
        """
        async with self._connect(auto=True) as conn:
            await conn.execute(select(1))

    @map_unavailable
    async def migrate(self, revision: str = "head") -> None:
        """Apply the migrations up to ``revision``; StoreUnavailable when unreachable."""
        await upgrade(self.engine, revision)

    # -- fenced writes of a processor (group committed) -------------------------
    @map_unavailable
    async def _fenced(self, job: ActiveJob, write: FencedWrite) -> Written:
        written: Written = await self._batcher.write(WRITE, job.gid, write)
        return written

    @map_unavailable
    async def _after_cancel(self, job: ActiveJob, write: FencedWrite, *, known: bool) -> bool:
        async with (await self._write_pool()).acquire() as conn:
            return await after_cancel(conn, job.gid, write, known=known)

    @map_unavailable
    async def lease_changes(self, held: Sequence[tuple[str, int]]) -> dict[str, bool]:
        """One read for every watched job (the processors' lease watch polls it)."""
        if not held:
            return {}
        stmt = text(
            "SELECT u.gid, t.cancelled_token IS NOT DISTINCT FROM u.token AS cancelled"
            " FROM unnest(CAST(:gids AS text[]), CAST(:tokens AS int8[])) AS u(gid, token)"
            f" LEFT JOIN {transactions.name} t ON t.gid = u.gid"
            " WHERE t.lease_token IS DISTINCT FROM u.token"
        )
        params = {"gids": [g for g, _ in held], "tokens": [t for _, t in held]}
        async with self._connect(auto=True) as conn:
            rows = (await conn.execute(stmt, params)).all()
        return {gid: bool(cancelled) for gid, cancelled in rows}

    # -- internals ----------------------------------------------------------------
    async def _update_one(self, stmt: Any, gid: str) -> tuple[Any, list[Any]] | None:
        """Run an UPDATE ... RETURNING of one job and read its steps, in one transaction."""
        async with self._begin() as conn:
            tx = (await conn.execute(stmt)).mappings().first()
            if tx is None:
                return None
            rows = (
                (await conn.execute(select(steps).where(_ST.gid == gid).order_by(_ST.idx)))
                .mappings()
                .all()
            )
        return tx, list(rows)

    def _connect(self, *, auto: bool = False) -> AsyncConnection:
        return (self._auto if auto else self.engine).connect()

    def _begin(self) -> Any:
        return self.engine.begin()

    @asynccontextmanager
    async def _searching(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction for List/Count, its statements cut at ``search_timeout``
        (a search over millions of finished rows must not run on after its caller left)."""
        try:
            async with self.engine.begin() as conn:
                if self._search_timeout > 0:
                    ms = str(max(1, round(self._search_timeout * 1000)))
                    await conn.execute(select(func.set_config("statement_timeout", ms, True)))
                yield conn
        except DBAPIError as err:
            if getattr(err.orig, "sqlstate", None) != _QUERY_CANCELED:
                raise
            raise SearchTooSlow(
                f"the search ran longer than {self._search_timeout:g}s and was stopped: "
                "narrow it (a status, a created or finished time range, a gid prefix) or "
                "raise STEPPING_SEARCH_TIMEOUT_SECONDS"
            ) from None

    # -- telemetry ------------------------------------------------------------------
    @map_unavailable
    async def due_stats(self) -> tuple[int, float]:
        """Jobs due that no replica holds, and seconds since the oldest became due (0: none)."""
        waiting = func.now() - func.min(_TX.next_time)
        stmt = select(func.count(), func.coalesce(func.extract("epoch", waiting), 0.0)).where(
            *_is_due()
        )
        async with self._connect(auto=True) as conn:
            count, age = (await conn.execute(stmt)).one()
        return int(count), float(age)

    # -- search and retention (issue 13) ------------------------------------------------
    @map_unavailable
    async def count_transactions(
        self, filter: TxFilter, *, at_most: int = 0
    ) -> dict[TxStatus, int]:
        """Jobs matching ``filter`` per status; ``at_most``: see ``JobStore``.

        Capped, it is one statement of a short scan per status (``LIMIT at_most + 1``
        on the (status, create_time) index), whatever the table's size."""
        where = conditions(filter)
        if at_most <= 0:
            stmt: Any = select(_TX.status, func.count()).where(*where).group_by(_TX.status)
        else:
            wanted = filter.statuses or tuple(TxStatus)
            parts = [
                select(literal(int(s)).label("status"), func.count().label("n")).select_from(
                    select(_TX.gid)
                    .where(*where, _TX.status == int(s))
                    .limit(at_most + 1)
                    .subquery()
                )
                for s in wanted
            ]
            stmt = union_all(*parts)
        async with self._searching() as conn:
            rows = (await conn.execute(stmt)).all()
        return {TxStatus(status): int(n) for status, n in rows if n}

    @map_unavailable
    async def purge_finished(
        self, *, older_than: float, statuses: Sequence[TxStatus], limit: int, dry_run: bool = False
    ) -> int:
        """Delete up to ``limit`` jobs in ``statuses`` (final ones; empty: all final) that
        finished more than ``older_than`` seconds ago (database clock), oldest first; their
        steps go by ON DELETE CASCADE. ``dry_run``: count them all, delete nothing."""
        cut = func.now() - bindparam(None, timedelta(seconds=older_than), type_=Interval())
        where = (
            _TX.status.in_([int(s) for s in final_statuses(statuses)]),
            _TX.finish_time < cut,
        )
        async with self._connect(auto=True) as conn:
            if dry_run:
                return int((await conn.execute(select(func.count()).where(*where))).scalar_one())
            batch = (
                select(_TX.gid)
                .where(*where)
                .order_by(_TX.finish_time)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            result = await conn.execute(delete(transactions).where(_TX.gid.in_(batch)))
        return int(result.rowcount)

    @asynccontextmanager
    async def exclusive(self, key: int) -> AsyncIterator[bool]:
        """True while this process holds the advisory lock ``key`` (no other replica
        does); False at once when another holds it. The lock lives in one session."""
        async with self._connect(auto=True) as conn:
            got = bool((await conn.execute(select(func.pg_try_advisory_lock(key)))).scalar_one())
            try:
                yield got
            finally:
                if got:
                    await conn.execute(select(func.pg_advisory_unlock(key)))

    # -- job control (issue 13) ---------------------------------------------------
    @map_unavailable
    async def cancel(self, gid: str, reason: str) -> bool:
        """Cancel an unfinished job (see ``JobStore.cancel``): one UPDATE."""
        prepared = _TX.status == int(TxStatus.PREPARED)
        # A parked compensation (needs_attention): the operator gives up on it.
        parked = (_TX.status == int(TxStatus.COMPENSATING)) & (_TX.needs_attention != "")
        saga = _TX.mode == int(Mode.SAGA)
        to_status = case(
            (prepared, int(TxStatus.ABORTED)),
            (parked, int(TxStatus.FAILED)),
            (saga, int(TxStatus.COMPENSATING)),
            else_=int(TxStatus.FAILED),
        )
        left_undone = f"cancelled: {reason} (left undone: " + _TX.needs_attention + ")"
        # SUBMITTED and held by a replica: a call may be in flight there (store.cancel).
        held = (_TX.status == int(TxStatus.SUBMITTED)) & _TX.lease_owner.is_not(None)
        keep_lease = held & saga
        stmt = (
            update(transactions)
            .where(
                _TX.gid == gid,
                or_(_TX.status.in_([int(TxStatus.PREPARED), int(TxStatus.SUBMITTED)]), parked),
            )
            .values(
                status=to_status,
                error=case((prepared, reason), (parked, left_undone), else_=f"cancelled: {reason}"),
                needs_attention="",
                cancel_reason=reason,
                cancelled_token=case((held, _TX.lease_token), else_=None),
                lease_token=_TX.lease_token + 1,
                lease_owner=case((keep_lease, _TX.lease_owner), else_=None),
                lease_expires=case((keep_lease, _TX.lease_expires), else_=None),
                next_time=func.now(),
                update_time=func.now(),
                finish_time=case((parked, func.now()), (~prepared & saga, None), else_=func.now()),
            )
            .returning(_TX.gid)
        )
        async with self._connect(auto=True) as conn:
            return (await conn.execute(stmt)).first() is not None

    @map_unavailable
    async def resume(
        self, gid: str, *, owner: str, lease: float
    ) -> tuple[ActiveJob, Transaction] | None:
        """FAILED, nothing compensated → SUBMITTED; a parked compensation → due now, leased
        here (see ``JobStore.resume``)."""
        unpark = (
            update(transactions)
            .where(
                _TX.gid == gid,
                _TX.status == int(TxStatus.COMPENSATING),
                _TX.needs_attention != "",
            )
            .values(
                needs_attention="",
                **_leased_to(owner, lease),
                next_time=func.now(),
                update_time=func.now(),
            )
            .returning(*transactions.c)
        )
        found = await self._update_one(unpark, gid)
        if found is not None:
            return _rows.active_job(*found, 0.0), _rows.transaction_from_rows(*found)
        compensated = (
            select(_ST.idx)
            .where(_ST.gid == gid, _ST.status == int(StepStatus.COMPENSATED))
            .exists()
        )
        job_stmt = (
            update(transactions)
            .where(_TX.gid == gid, _TX.status == int(TxStatus.FAILED), ~compensated)
            .values(
                status=int(TxStatus.SUBMITTED),
                error="",
                cancel_reason=None,
                cancelled_token=None,
                finish_time=None,
                **_leased_to(owner, lease),
                next_time=func.now(),
                update_time=func.now(),
                deadline_at=_TX.deadline * bindparam(None, timedelta(seconds=1), type_=Interval())
                + func.now(),
            )
            .returning(*transactions.c)
        )
        steps_stmt = (
            update(steps)
            .where(_ST.gid == gid, _ST.status != int(StepStatus.SUCCEEDED))
            .values(status=int(StepStatus.PENDING), attempts=0, next_attempt_time=None)
        )
        async with self._begin() as conn:
            tx = (await conn.execute(job_stmt)).mappings().first()
            if tx is None:
                return None
            await conn.execute(steps_stmt)
            rows = list(
                (await conn.execute(select(steps).where(_ST.gid == gid).order_by(_ST.idx)))
                .mappings()
                .all()
            )
        return _rows.active_job(tx, rows, 0.0), _rows.transaction_from_rows(tx, rows)


async def _no_reset(conn: Any) -> None:
    """The write connections set no session state: skip the reset round trip."""


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``postgres://`` URLs; the TM always uses asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url
