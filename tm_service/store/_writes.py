"""The hot-path writes, group-committed: new jobs and the fenced writes of processors.

A batch is ONE SQL statement over arrays (``unnest``), whatever the number of jobs in
it: it inserts every new job with its steps and updates every step and job row that
processors reported, in one round trip and one commit. It runs on a plain asyncpg
connection (prepared once per connection, no ORM or expression work per call):
round trips are what costs most here, in CPU as much as in latency.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tm_service.domain import NewTransaction, TxStatus
from tm_service.errors import LeaseLost
from tm_service.store._batch import Pending
from tm_service.store._port import Written

__all__ = ["INSERT", "WRITE", "FencedWrite", "Inserted", "NewJob", "Written", "write_batch"]

INSERT = "insert"
WRITE = "write"


@dataclass(frozen=True, slots=True)
class NewJob:
    new: NewTransaction
    status: TxStatus
    owner: str | None
    lease: float


@dataclass(frozen=True, slots=True)
class Inserted:
    """A stored new job (None instead of this when the gid was taken)."""

    create_time: datetime


class FencedWrite(NamedTuple):
    """A write to a job this replica holds the lease of (``token``), and maybe a step.

    Job columns: ``None`` keeps the stored value. ``lease`` renews the lease for that
    many seconds; ``None`` releases it. Step columns apply when ``step`` is set.
    The fields are in the order of the statement's parameters (a tuple, so a batch
    is transposed into columns in one call).
    """

    token: int
    lease: float | None
    status: int | None = None
    error: str | None = None
    next_in: float | None = None
    finish: bool = False
    deadline_in: float | None = None
    bump_query_attempts: bool = False
    step: int | None = None
    step_status: int = 0
    attempts: int = 0
    last_error: str | None = None
    set_result: bool = False
    result: bytes | None = None
    step_next_in: float | None = None


# New jobs ($1-$28) and fenced writes ($29-$44) of a batch: one statement, one round
# trip, one commit. A write never targets a job inserted in the same batch (a job's
# writes wait for its insert), so the parts are independent.
_BATCH_SQL = """
WITH v AS (
  SELECT * FROM unnest(
    $1::text[], $2::int2[], $3::int2[], $4::bool[], $5::float8[], $6::float8[],
    $7::float8[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[],
    $13::text[], $14::float8[]
  ) AS v(gid, status, mode, concurrent, step_timeout, check_prepared_after, deadline,
         qp_target, qp_method, database, fingerprint, trace_context, lease_owner, lease)
), tx AS (
  INSERT INTO stepping_transactions (
    gid, status, mode, concurrent, step_timeout, check_prepared_after, deadline,
    deadline_at, qp_target, qp_method, database, fingerprint, trace_context, next_time,
    lease_owner, lease_token, lease_expires)
  SELECT gid, status, mode, concurrent, step_timeout, check_prepared_after, deadline,
    CASE WHEN status = 2 THEN now() + deadline * interval '1 second' END,
    qp_target, qp_method, database, fingerprint, trace_context::jsonb,
    CASE WHEN status = 2 THEN now()
         ELSE now() + check_prepared_after * interval '1 second' END,
    lease_owner, CASE WHEN status = 2 THEN 1 ELSE 0 END,
    now() + lease * interval '1 second'
  FROM v
  ON CONFLICT (gid) DO NOTHING
  RETURNING gid, create_time
), st AS (
  INSERT INTO stepping_steps (
    gid, idx, name, action_target, action_method, comp_target, comp_method, payload,
    headers, initial_interval, backoff_coefficient, maximum_interval, maximum_attempts,
    timeout, status)
  SELECT s.gid, s.idx, s.name, s.action_target, s.action_method, s.comp_target,
    s.comp_method, s.payload, s.headers::jsonb, s.initial_interval,
    s.backoff_coefficient, s.maximum_interval, s.maximum_attempts, s.timeout, 1
  FROM unnest(
    $15::text[], $16::int4[], $17::text[], $18::text[], $19::text[], $20::text[],
    $21::text[], $22::bytea[], $23::text[], $24::float8[], $25::float8[],
    $26::float8[], $27::int4[], $28::float8[]
  ) AS s(gid, idx, name, action_target, action_method, comp_target, comp_method,
         payload, headers, initial_interval, backoff_coefficient, maximum_interval,
         maximum_attempts, timeout)
  WHERE s.gid IN (SELECT gid FROM tx)
),
w AS (
  SELECT * FROM unnest(
    $29::text[], $30::int8[], $31::float8[], $32::int2[], $33::text[], $34::float8[],
    $35::bool[], $36::float8[], $37::bool[], $38::int4[], $39::int2[], $40::int4[],
    $41::text[], $42::bool[], $43::bytea[], $44::float8[]
  ) AS v(gid, token, lease, status, error, next_in, finish, deadline_in, bump_query,
         idx, step_status, attempts, last_error, set_result, result, step_next_in)
), wtx AS (
  UPDATE stepping_transactions t SET
    status = coalesce(v.status, t.status),
    error = coalesce(v.error, t.error),
    lease_owner = CASE WHEN v.lease IS NULL THEN NULL ELSE t.lease_owner END,
    lease_expires = now() + v.lease * interval '1 second',
    next_time = coalesce(now() + v.next_in * interval '1 second', t.next_time),
    finish_time = CASE WHEN v.finish THEN now() ELSE t.finish_time END,
    deadline_at = coalesce(now() + v.deadline_in * interval '1 second', t.deadline_at),
    query_attempts = t.query_attempts + CASE WHEN v.bump_query THEN 1 ELSE 0 END,
    update_time = now()
  FROM w AS v
  WHERE t.gid = v.gid AND t.lease_token = v.token
  RETURNING t.gid, t.update_time, t.finish_time
), wst AS (
  UPDATE stepping_steps s SET
    status = v.step_status,
    attempts = v.attempts,
    last_error = coalesce(v.last_error, s.last_error),
    result = CASE WHEN v.set_result THEN v.result ELSE s.result END,
    next_attempt_time = now() + v.step_next_in * interval '1 second'
  FROM w AS v JOIN wtx ON wtx.gid = v.gid
  WHERE v.idx IS NOT NULL AND s.gid = v.gid AND s.idx = v.idx
)
SELECT true AS inserted, gid, create_time AS at, NULL::timestamptz AS finish_time FROM tx
UNION ALL
SELECT false, gid, update_time, finish_time FROM wtx
"""


def _insert_args(jobs: Sequence[tuple[str, NewJob]]) -> list[Sequence[Any]]:
    tx_rows: list[tuple[Any, ...]] = []
    step_rows: list[tuple[Any, ...]] = []
    for gid, job in jobs:
        new, opts, qp = job.new, job.new.options, job.new.query_prepared
        submitted = job.status is TxStatus.SUBMITTED
        tx_rows.append(
            (
                gid,
                int(job.status),
                int(opts.mode),
                opts.concurrent,
                opts.step_timeout,
                opts.check_prepared_after,
                opts.deadline,
                qp.target if qp else None,
                qp.method if qp else None,
                new.database,
                new.fingerprint,
                json.dumps(new.trace_context) if new.trace_context else "{}",
                job.owner if submitted else None,
                job.lease if submitted else None,
            )
        )
        for s in new.steps:
            comp, policy = s.compensation, s.retry_policy
            step_rows.append(
                (
                    gid,
                    s.index,
                    s.name,
                    s.action.target,
                    s.action.method,
                    comp.target if comp else None,
                    comp.method if comp else None,
                    s.payload,
                    json.dumps(s.headers) if s.headers else "{}",
                    policy.initial_interval,
                    policy.backoff_coefficient,
                    policy.maximum_interval,
                    policy.maximum_attempts,
                    s.timeout,
                )
            )
    return _columns(tx_rows, 14) + _columns(step_rows, 14)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[Sequence[Any]]:
    """Rows → one sequence per column (the statement's array parameters)."""
    if not rows:
        return [()] * width
    return list(zip(*rows, strict=True))


def _write_args(writes: Sequence[tuple[str, FencedWrite]]) -> list[Sequence[Any]]:
    return _columns([(gid, *w) for gid, w in writes], len(FencedWrite._fields) + 1)


async def write_batch(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any], batch: Sequence[Pending]
) -> None:
    """Write a batch and resolve its futures: ``Inserted``/None, ``Written``/LeaseLost."""
    inserts = [(p.gid, p.values) for p in batch if p.kind == INSERT]
    writes = [(p.gid, p.values) for p in batch if p.kind == WRITE]
    rows = await conn.fetch(_BATCH_SQL, *_insert_args(inserts), *_write_args(writes))
    made: dict[str, Inserted] = {}
    done: dict[str, Written] = {}
    for r in rows:
        if r["inserted"]:
            made[r["gid"]] = Inserted(r["at"])
        else:
            done[r["gid"]] = Written(r["at"], r["finish_time"])
    for p in batch:
        if p.future.done():
            continue
        if p.kind == INSERT:
            p.future.set_result(made.get(p.gid))
        elif p.gid in done:
            p.future.set_result(done[p.gid])
        else:
            p.future.set_exception(LeaseLost(p.gid))
