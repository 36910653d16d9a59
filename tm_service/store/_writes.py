"""The hot-path writes, group-committed: new jobs and the fenced writes of processors.

A batch is ONE SQL statement over arrays (``unnest``), whatever the number of jobs in
it: it inserts every new job with its steps and updates every step and job row that
processors reported, in one round trip and one commit. It runs on a plain asyncpg
connection (prepared once per connection, no ORM or expression work per call):
round trips are what costs most here, in CPU as much as in latency.

The statement is generated once, at import, from the declarations below (column
names from the ``_schema`` tables); a call only builds its array parameters.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, NamedTuple, TypeVar, get_type_hints

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import Table

from tm_service.domain import (
    BUCKETS,
    HISTORY_LIMIT,
    NewTransaction,
    StepSpec,
    StepStatus,
    TxStatus,
)
from tm_service.errors import LeaseLost
from tm_service.store._batch import Pending
from tm_service.store._port import Written
from tm_service.store._schema import steps, transactions

__all__ = [
    "INSERT",
    "WRITE",
    "FencedWrite",
    "Inserted",
    "NewJob",
    "Written",
    "after_cancel",
    "write_batch",
]

INSERT = "insert"
WRITE = "write"

_T = TypeVar("_T")

# Postgres element types of the array parameters (``$n::int2[]``).
TEXT = "text"
INT2 = "int2"
INT4 = "int4"
INT8 = "int8"
FLOAT8 = "float8"
BOOL = "bool"
BYTEA = "bytea"


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

    The fields ARE the statement's write parameters, in order, after the job's gid
    (a tuple, so a batch is transposed into columns in one call); each is annotated
    with its Postgres type. A new field: add it here, then use ``v.<field>`` in
    ``_JOB_SET`` / ``_STEP_SET``.
    """

    token: Annotated[int, INT8]
    lease: Annotated[float | None, FLOAT8]
    status: Annotated[int | None, INT2] = None
    error: Annotated[str | None, TEXT] = None
    next_in: Annotated[float | None, FLOAT8] = None
    finish: Annotated[bool, BOOL] = False
    deadline_in: Annotated[float | None, FLOAT8] = None
    bump_query_attempts: Annotated[bool, BOOL] = False
    step: Annotated[int | None, INT4] = None
    step_status: Annotated[int, INT2] = 0
    attempts: Annotated[int, INT4] = 0
    last_error: Annotated[str | None, TEXT] = None
    set_result: Annotated[bool, BOOL] = False
    result: Annotated[bytes | None, BYTEA] = None
    step_next_in: Annotated[float | None, FLOAT8] = None
    # Calls to append to the step's history / the job's back-check history: a JSON
    # array of ``Attempt.to_json()`` objects (text: unnest cannot take arrays of arrays).
    history: Annotated[str | None, TEXT] = None
    qp_history: Annotated[str | None, TEXT] = None
    # Why the TM stopped retrying and waits for an operator ("" clears it).
    needs_attention: Annotated[str | None, TEXT] = None


# -- the statement's declaration ------------------------------------------------------
@dataclass(frozen=True)
class _Param(Generic[_T]):
    """An array parameter of an insert: one value per row, the row as ``v.<name>``."""

    name: str  # the column it fills
    type: str  # its Postgres element type
    # The whole column, from the rows' gids and domain objects: a comprehension (a
    # call per value made building the arguments ~1.5x slower, measured).
    get: Callable[[list[str], list[_T]], Sequence[object]]
    cast: str | None = None  # the column's type, when not ``type``: ``v.<name>::<cast>``
    column: bool = True  # False: no column of its own, an input of ``computed`` only


@dataclass(frozen=True)
class _Insert(Generic[_T]):
    """The rows a batch inserts into ``table``."""

    table: Table
    params: tuple[_Param[_T], ...]
    computed: Mapping[str, str]  # column → its SQL, over ``v.<param>``


_SUBMITTED = int(TxStatus.SUBMITTED)


def _buckets(gids: list[str], _: object) -> list[int]:
    """The rows' buckets: ``domain.bucket_of`` inlined (one comprehension, no call per gid)."""
    return [zlib.crc32(g.encode()) % BUCKETS for g in gids]


# What a batch inserts: a row per new job (a NewJob) and per step (a StepSpec). To store
# one more column, say the job's ``owner``:
#   1. a migration adding it, and the same Column in its Table in _schema;
#   2. ONE entry here: a _Param named as the column, with its Postgres type and how to
#      take it from the domain objects, or a ``computed`` entry for a value made in SQL
#      (a list or mapping goes in as text with ``cast="jsonb"``: unnest would flatten
#      an array of arrays).
# The statement, its parameter numbers and the arguments follow; the unit test
# tests/unit/test_batch_statement.py checks them against the Tables. (Reading the
# column back is _rows' business: every read selects whole rows.)
_JOBS = _Insert[NewJob](
    transactions,
    (
        _Param("gid", TEXT, lambda gids, _: gids),
        _Param("bucket", INT2, _buckets),
        _Param("status", INT2, lambda _, js: [int(j.status) for j in js]),
        _Param("mode", INT2, lambda _, js: [int(j.new.options.mode) for j in js]),
        _Param("concurrent", BOOL, lambda _, js: [j.new.options.concurrent for j in js]),
        _Param("step_timeout", FLOAT8, lambda _, js: [j.new.options.step_timeout for j in js]),
        _Param(
            "check_prepared_after",
            FLOAT8,
            lambda _, js: [j.new.options.check_prepared_after for j in js],
        ),
        _Param("deadline", FLOAT8, lambda _, js: [j.new.options.deadline for j in js]),
        _Param(
            "qp_target",
            TEXT,
            lambda _, js: [qp.target if (qp := j.new.query_prepared) else None for j in js],
        ),
        _Param(
            "qp_method",
            TEXT,
            lambda _, js: [qp.method if (qp := j.new.query_prepared) else None for j in js],
        ),
        _Param("database", TEXT, lambda _, js: [j.new.database for j in js]),
        _Param("fingerprint", BYTEA, lambda _, js: [j.new.fingerprint for j in js]),
        _Param(
            "trace_context",
            TEXT,
            lambda _, js: [json.dumps(t) if (t := j.new.trace_context) else "{}" for j in js],
            cast="jsonb",
        ),
        _Param("owner", TEXT, lambda _, js: [j.new.owner for j in js]),
        _Param("protocol", TEXT, lambda _, js: [j.new.protocol for j in js]),
        _Param(
            "tags",
            TEXT,
            lambda _, js: [json.dumps(t) if (t := j.new.tags) else "{}" for j in js],
            cast="jsonb",
        ),
        _Param(
            "lease_owner",
            TEXT,
            lambda _, js: [j.owner if j.status is TxStatus.SUBMITTED else None for j in js],
        ),
        _Param(
            "lease",
            FLOAT8,
            lambda _, js: [j.lease if j.status is TxStatus.SUBMITTED else None for j in js],
            column=False,
        ),
    ),
    {
        # A submitted job starts at once, leased to this replica (token 1); a prepared
        # one waits for its back-check.
        "deadline_at": (
            f"CASE WHEN v.status = {_SUBMITTED} THEN now() + v.deadline * interval '1 second' END"
        ),
        "next_time": (
            f"CASE WHEN v.status = {_SUBMITTED} THEN now()"
            " ELSE now() + v.check_prepared_after * interval '1 second' END"
        ),
        "lease_token": f"CASE WHEN v.status = {_SUBMITTED} THEN 1 ELSE 0 END",
        "lease_expires": "now() + v.lease * interval '1 second'",
    },
)
_STEPS = _Insert[StepSpec](
    steps,
    (
        _Param("gid", TEXT, lambda gids, _: gids),  # the step's job's
        _Param("bucket", INT2, _buckets),  # its job's (computed again: cheaper than a join)
        _Param("idx", INT4, lambda _, ss: [s.index for s in ss]),
        _Param("name", TEXT, lambda _, ss: [s.name for s in ss]),
        _Param("action_target", TEXT, lambda _, ss: [s.action.target for s in ss]),
        _Param("action_method", TEXT, lambda _, ss: [s.action.method for s in ss]),
        _Param(
            "comp_target",
            TEXT,
            lambda _, ss: [c.target if (c := s.compensation) else None for s in ss],
        ),
        _Param(
            "comp_method",
            TEXT,
            lambda _, ss: [c.method if (c := s.compensation) else None for s in ss],
        ),
        _Param("payload", BYTEA, lambda _, ss: [s.payload for s in ss]),
        _Param(
            "headers",
            TEXT,
            lambda _, ss: [json.dumps(s.headers) if s.headers else "{}" for s in ss],
            cast="jsonb",
        ),
        _Param(
            "initial_interval",
            FLOAT8,
            lambda _, ss: [s.retry_policy.initial_interval for s in ss],
        ),
        _Param(
            "backoff_coefficient",
            FLOAT8,
            lambda _, ss: [s.retry_policy.backoff_coefficient for s in ss],
        ),
        _Param(
            "maximum_interval",
            FLOAT8,
            lambda _, ss: [s.retry_policy.maximum_interval for s in ss],
        ),
        _Param(
            "maximum_attempts",
            INT4,
            lambda _, ss: [s.retry_policy.maximum_attempts for s in ss],
        ),
        _Param("timeout", FLOAT8, lambda _, ss: [s.timeout for s in ss]),
        _Param(
            "non_retryable_codes",
            TEXT,
            lambda _, ss: [json.dumps(list(s.retry_policy.non_retryable_codes)) for s in ss],
            cast="jsonb",
        ),
    ),
    {"status": str(int(StepStatus.PENDING))},
)

# The fenced writes' parameters: the job's gid, then FencedWrite's fields and types.
_WRITE_TYPES = get_type_hints(FencedWrite, include_extras=True)
_WRITES: tuple[tuple[str, str], ...] = (
    ("gid", TEXT),
    *((field, _WRITE_TYPES[field].__metadata__[0]) for field in FencedWrite._fields),
)


def _appended(stored: str, new: str) -> str:
    """SQL: the JSON array ``stored`` with ``new`` (JSON text) appended, the newest
    HISTORY_LIMIT kept; the cut only when the array is that long already."""
    both = f"({stored} || {new}::jsonb)"
    return (
        f"CASE WHEN {new} IS NULL THEN {stored}"
        f" WHEN jsonb_array_length({stored}) < {HISTORY_LIMIT} THEN {both}"
        f" ELSE (SELECT jsonb_agg(x.e ORDER BY x.i) FROM jsonb_array_elements({both})"
        f" WITH ORDINALITY AS x(e, i) WHERE x.i > jsonb_array_length({both}) - {HISTORY_LIMIT})"
        " END"
    )


# What a write sets: column → its SQL, over the write (``v``) and the stored row.
_JOB_SET = {  # the stored job is ``t``
    "status": "coalesce(v.status, t.status)",
    "error": "coalesce(v.error, t.error)",
    "lease_owner": "CASE WHEN v.lease IS NULL THEN NULL ELSE t.lease_owner END",
    "lease_expires": "now() + v.lease * interval '1 second'",
    "next_time": "coalesce(now() + v.next_in * interval '1 second', t.next_time)",
    "finish_time": "CASE WHEN v.finish THEN now() ELSE t.finish_time END",
    "deadline_at": "coalesce(now() + v.deadline_in * interval '1 second', t.deadline_at)",
    "query_attempts": "t.query_attempts + CASE WHEN v.bump_query_attempts THEN 1 ELSE 0 END",
    "qp_history": _appended("t.qp_history", "v.qp_history"),
    "needs_attention": "coalesce(v.needs_attention, t.needs_attention)",
    "update_time": "now()",
}
_STEP_SET = {  # the stored step is ``s``
    "status": "v.step_status",
    "attempts": "v.attempts",
    "last_error": "coalesce(v.last_error, s.last_error)",
    "result": "CASE WHEN v.set_result THEN v.result ELSE s.result END",
    "next_attempt_time": "now() + v.step_next_in * interval '1 second'",
    "history": _appended("s.history", "v.history"),
}


# -- the statement, generated once ----------------------------------------------------
def _unnest(params: Sequence[tuple[str, str]], first: int) -> str:
    """``unnest($first::type[], ...) AS v(name, ...)``."""
    arrays = ", ".join(f"${n}::{type_}[]" for n, (_, type_) in enumerate(params, first))
    return f"unnest({arrays}) AS v({', '.join(name for name, _ in params)})"


def _insert(ins: _Insert[Any], first: int) -> str:
    values = {
        p.name: f"v.{p.name}::{p.cast}" if p.cast else f"v.{p.name}" for p in ins.params if p.column
    }
    if overlap := values.keys() & ins.computed.keys():
        raise ValueError(f"{ins.table.name}: computed columns also taken as is: {overlap}")
    values.update(ins.computed)
    columns = [ins.table.c[name].name for name in values]  # KeyError: not a column
    return (
        f"INSERT INTO {ins.table.name} ({', '.join(columns)})\n"
        f"  SELECT {', '.join(values.values())}\n"
        f"  FROM {_unnest([(p.name, p.type) for p in ins.params], first)}"
    )


def _set(table: Table, values: Mapping[str, str]) -> str:
    # KeyError: not a column.
    return ", ".join(f"{table.c[name].name} = {sql}" for name, sql in values.items())


_STEPS_FIRST = 1 + len(_JOBS.params)
_WRITES_FIRST = _STEPS_FIRST + len(_STEPS.params)
_PRIMARY_KEY = ", ".join(c.name for c in transactions.primary_key)

# New jobs and fenced writes of a batch: one statement, one round trip, one commit. A
# write never targets a job inserted in the same batch (a job's writes wait for its
# insert), so the parts are independent.
_BATCH_SQL = f"""
WITH tx AS (
  {_insert(_JOBS, 1)}
  ON CONFLICT ({_PRIMARY_KEY}) DO NOTHING
  RETURNING gid, create_time
), st AS (
  {_insert(_STEPS, _STEPS_FIRST)}
  WHERE v.gid IN (SELECT gid FROM tx)
), w AS (
  SELECT * FROM {_unnest(_WRITES, _WRITES_FIRST)}
), wtx AS (
  UPDATE {transactions.name} t SET {_set(transactions, _JOB_SET)}
  FROM w AS v
  WHERE t.gid = v.gid AND t.lease_token = v.token
  RETURNING t.gid, t.update_time, t.finish_time
), wst AS (
  UPDATE {steps.name} s SET {_set(steps, _STEP_SET)}
  FROM w AS v JOIN wtx ON wtx.gid = v.gid
  WHERE v.step IS NOT NULL AND s.gid = v.gid AND s.idx = v.step
)
SELECT true AS inserted, gid, create_time AS at, NULL::timestamptz AS finish_time FROM tx
UNION ALL
SELECT false, gid, update_time, finish_time FROM wtx
"""

# A write refused because the job was cancelled while held (``FencedWrites._after_cancel``):
# its step part, if the job's token is the Cancel's (one past the write's, which the
# Cancel kept in ``cancelled_token``) and the step is still pending; the job is released.
# Rare (a Cancel during a call): not batched. The last parameter: ``known``.
_AFTER_CANCEL_SQL = f"""
WITH v AS (
  SELECT * FROM {_unnest(_WRITES, 1)}
), wtx AS (
  UPDATE {transactions.name} t SET lease_owner = NULL, lease_expires = NULL,
    next_time = now(), update_time = now(),
    cancelled_token = CASE WHEN ${len(_WRITES) + 1}::bool THEN NULL ELSE t.cancelled_token END
  FROM v
  WHERE t.gid = v.gid AND t.cancel_reason IS NOT NULL
    AND t.cancelled_token = v.token AND t.lease_token = v.token + 1
  RETURNING t.gid
), wst AS (
  UPDATE {steps.name} s SET {_set(steps, _STEP_SET)}
  FROM v JOIN wtx ON wtx.gid = v.gid
  WHERE v.step IS NOT NULL AND s.gid = v.gid AND s.idx = v.step
    AND s.status = {int(StepStatus.PENDING)}
)
SELECT count(*) AS n FROM wtx
"""


async def after_cancel(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any],
    gid: str,
    write: FencedWrite,
    *,
    known: bool,
) -> bool:
    """Apply ``_AFTER_CANCEL_SQL``; True when the job was released (and the step written)."""
    n: int = await conn.fetchval(_AFTER_CANCEL_SQL, *_write_args([(gid, write)]), known)
    return n > 0


_JOB_GETS = tuple(p.get for p in _JOBS.params)
_STEP_GETS = tuple(p.get for p in _STEPS.params)


def _insert_args(jobs: Sequence[tuple[str, NewJob]]) -> list[Sequence[object]]:
    """New jobs → one list per parameter, jobs' then steps' (a step's gid is its job's)."""
    gids = [gid for gid, _ in jobs]
    news = [job for _, job in jobs]
    step_gids = [gid for gid, job in jobs for _ in job.new.steps]
    specs = [s for _, job in jobs for s in job.new.steps]
    return [get(gids, news) for get in _JOB_GETS] + [get(step_gids, specs) for get in _STEP_GETS]


def _write_args(writes: Sequence[tuple[str, FencedWrite]]) -> list[Sequence[object]]:
    """Writes → one sequence per parameter (a transposition: a write is a tuple)."""
    if not writes:
        return [()] * len(_WRITES)
    return list(zip(*[(gid, *w) for gid, w in writes], strict=True))


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
