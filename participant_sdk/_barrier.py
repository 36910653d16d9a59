"""DTM's sub-transaction barrier on Postgres: exactly-once step effects.

Every guarded call insert-ignores a row ``(gid, branch_id, op, barrier_id)`` inside the
caller's own transaction, next to its business writes. The unique key does the rest:

* action: no row inserted → a duplicate delivery → skip the body;
* compensate: first insert-ignore the *action's* row (reason ``compensate``). If that
  inserts, the action never ran: skip the compensation, and the late action will find
  its row taken and skip too. Then insert-ignore the compensate row; a duplicate skips;
* msg (branch ``00``): the 2-phase message row, written by ``job.start(conn)`` with
  reason ``msg`` and by QueryPrepared with reason ``rollback``; whichever commits first
  decides the job. An insert blocks while another open transaction holds the key, which
  is what makes the back-check's answer safe.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, overload

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from participant_sdk._info import current_call

__all__ = [
    "MSG_BRANCH",
    "BarrierConnection",
    "SyncBarrierConnection",
    "barrier",
    "barrier_table",
    "insert_msg_row",
    "insert_msg_row_sync",
    "metadata",
    "query_prepared",
]

MSG_BRANCH = "00"
_MSG_BARRIER_ID = "01"

metadata = sa.MetaData()

barrier_table = sa.Table(
    "stepping_barrier",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("gid", sa.Text, nullable=False),
    sa.Column("branch_id", sa.Text, nullable=False),
    sa.Column("op", sa.Text, nullable=False),
    sa.Column("barrier_id", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("gid", "branch_id", "op", "barrier_id", name="stepping_barrier_uniq"),
)

#: What ``barrier`` and ``job.start`` accept: a connection or session in a transaction.
BarrierConnection = AsyncConnection | AsyncSession
#: The blocking forms (``barrier`` in a plain ``def`` step, ``SyncJob.start``).
SyncBarrierConnection = sa.Connection | Session


@dataclass(frozen=True, slots=True)
class _Row:
    """One barrier row to insert-ignore."""

    gid: str
    branch_id: str
    op: str
    barrier_id: str
    reason: str

    def insert(self) -> Any:
        """The insert-ignore statement (Postgres ``ON CONFLICT DO NOTHING``)."""
        return (
            pg_insert(barrier_table)
            .values(
                gid=self.gid,
                branch_id=self.branch_id,
                op=self.op,
                barrier_id=self.barrier_id,
                reason=self.reason,
            )
            .on_conflict_do_nothing(index_elements=["gid", "branch_id", "op", "barrier_id"])
            .returning(barrier_table.c.id)
        )


def _inserted(result: Any) -> bool:
    # RETURNING, not rowcount: every driver reports returned rows the same way.
    return result.first() is not None


async def _insert_ignore(conn: BarrierConnection, row: _Row) -> bool:
    """Inserts the row unless its key exists; True when a row was inserted."""
    return _inserted(await conn.execute(row.insert()))


def _insert_ignore_sync(conn: SyncBarrierConnection, row: _Row) -> bool:
    return _inserted(conn.execute(row.insert()))


def _plan() -> tuple[_Row, ...]:
    """The rows of the current step call's next barrier: one for an action; for a
    compensation, the action's row (reason ``compensate``) then its own."""
    call = current_call()
    step = call.info
    barrier_id = call.next_barrier_id()
    if step.op == "compensate":
        return (
            _Row(step.gid, step.branch_id, "action", barrier_id, "compensate"),
            _Row(step.gid, step.branch_id, "compensate", barrier_id, "compensate"),
        )
    return (_Row(step.gid, step.branch_id, "action", barrier_id, "action"),)


def _decide(inserted: list[bool]) -> bool:
    if len(inserted) == 1:
        return inserted[0]
    action_never_ran, first = inserted
    return first and not action_never_ran


async def _barrier_async(conn: BarrierConnection, rows: tuple[_Row, ...]) -> bool:
    return _decide([await _insert_ignore(conn, row) for row in rows])


@overload
def barrier(conn: BarrierConnection) -> Coroutine[Any, Any, bool]: ...
@overload
def barrier(conn: SyncBarrierConnection) -> bool: ...
def barrier(
    conn: BarrierConnection | SyncBarrierConnection,
) -> Coroutine[Any, Any, bool] | bool:
    """Guards the DB writes of the current step call; True means "run the body".

    Call it inside a step, on the SQLAlchemy connection or session (Postgres) whose
    transaction also holds the step's business writes, before them. In an ``async def``
    step, on an ``AsyncConnection``/``AsyncSession``, await it::

        async with engine.begin() as conn:
            if await barrier(conn):
                await conn.execute(debit_stmt)

    In a plain ``def`` step, on a ``Connection``/``Session``, it returns the bool::

        with engine.begin() as conn:
            if barrier(conn):
                conn.execute(debit_stmt)

    False means this call must do nothing: a duplicate delivery, or a compensation
    that arrived before its action (then the late action is skipped too). **Commit
    the transaction in both cases**: the rows written by the barrier are the memory
    that makes later deliveries no-ops.
    """
    rows = _plan()
    if isinstance(conn, AsyncConnection | AsyncSession):
        return _barrier_async(conn, rows)
    return _decide([_insert_ignore_sync(conn, row) for row in rows])


def _msg_row(gid: str, reason: str) -> _Row:
    return _Row(gid, MSG_BRANCH, "msg", _MSG_BARRIER_ID, reason)


async def insert_msg_row(conn: BarrierConnection, gid: str) -> bool:
    """Writes the 2-phase message row (reason ``msg``); False if the key was taken."""
    return await _insert_ignore(conn, _msg_row(gid, "msg"))


def insert_msg_row_sync(conn: SyncBarrierConnection, gid: str) -> bool:
    """:func:`insert_msg_row` on a blocking connection or session."""
    return _insert_ignore_sync(conn, _msg_row(gid, "msg"))


async def query_prepared(engine: AsyncEngine, gid: str) -> Literal["committed", "rolled_back"]:
    """The back-check: did the local transaction that prepared ``gid`` commit?

    Insert-ignores the ``rollback`` row (waiting for an open transaction that holds
    the key) and reads which reason won.
    """
    async with engine.begin() as conn:
        await _insert_ignore(conn, _msg_row(gid, "rollback"))
        reason = (
            await conn.execute(
                sa.select(barrier_table.c.reason).where(
                    barrier_table.c.gid == gid,
                    barrier_table.c.branch_id == MSG_BRANCH,
                    barrier_table.c.op == "msg",
                    barrier_table.c.barrier_id == _MSG_BARRIER_ID,
                )
            )
        ).scalar_one()
    return "committed" if reason == "msg" else "rolled_back"
