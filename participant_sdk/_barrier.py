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

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from participant_sdk._info import current_call

__all__ = [
    "MSG_BRANCH",
    "BarrierConnection",
    "barrier",
    "barrier_table",
    "insert_msg_row",
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


async def _insert_ignore(
    conn: BarrierConnection, *, gid: str, branch_id: str, op: str, barrier_id: str, reason: str
) -> bool:
    """Inserts the row unless its key exists; True when a row was inserted."""
    stmt = (
        pg_insert(barrier_table)
        .values(gid=gid, branch_id=branch_id, op=op, barrier_id=barrier_id, reason=reason)
        .on_conflict_do_nothing(index_elements=["gid", "branch_id", "op", "barrier_id"])
    )
    result: Any = await conn.execute(stmt)
    return int(result.rowcount) == 1


async def barrier(conn: BarrierConnection) -> bool:
    """Guards the DB writes of the current step call; True means "run the body".

    Call it inside a step, on the SQLAlchemy ``AsyncConnection`` or ``AsyncSession``
    (Postgres) whose transaction also holds the step's business writes, before them::

        async with engine.begin() as conn:
            if await barrier(conn):
                await conn.execute(debit_stmt)

    False means this call must do nothing: a duplicate delivery, or a compensation
    that arrived before its action (then the late action is skipped too). **Commit
    the transaction in both cases**: the rows written by the barrier are the memory
    that makes later deliveries no-ops.
    """
    call = current_call()
    step = call.info
    barrier_id = call.next_barrier_id()
    if step.op == "compensate":
        key = {"gid": step.gid, "branch_id": step.branch_id, "barrier_id": barrier_id}
        action_never_ran = await _insert_ignore(conn, **key, op="action", reason="compensate")
        first = await _insert_ignore(conn, **key, op="compensate", reason="compensate")
        return first and not action_never_ran
    return await _insert_ignore(
        conn,
        gid=step.gid,
        branch_id=step.branch_id,
        op="action",
        barrier_id=barrier_id,
        reason="action",
    )


def _msg_key(gid: str) -> dict[str, str]:
    return {"gid": gid, "branch_id": MSG_BRANCH, "op": "msg", "barrier_id": _MSG_BARRIER_ID}


async def insert_msg_row(conn: BarrierConnection, gid: str) -> bool:
    """Writes the 2-phase message row (reason ``msg``); False if the key was taken."""
    return await _insert_ignore(conn, **_msg_key(gid), reason="msg")


async def query_prepared(engine: AsyncEngine, gid: str) -> Literal["committed", "rolled_back"]:
    """The back-check: did the local transaction that prepared ``gid`` commit?

    Insert-ignores the ``rollback`` row (waiting for an open transaction that holds
    the key) and reads which reason won.
    """
    async with engine.begin() as conn:
        await _insert_ignore(conn, **_msg_key(gid), reason="rollback")
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
