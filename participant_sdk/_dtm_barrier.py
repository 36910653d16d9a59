"""DTM's barrier layout on Postgres and MySQL/MariaDB, so a Python participant can live
beside DTM ones.

The same exactly-once rules as ``_barrier`` (insert-ignore a row per call, inside the
caller's transaction), on DTM's own table ``dtm_barrier.barrier`` (id, trans_type, gid,
branch_id, op, barrier_id, reason, create_time, update_time; unique gid + branch_id +
op + barrier_id) and its 2-phase message row (gid, "00", "msg", "01", reason "msg" or
"rollback"). The call's keys come from DTM's branch-call metadata (``dtm-gid``,
``dtm-trans_type``, ``dtm-branch_id``, ``dtm-op``), which this TM sends for jobs made
through its DTM API and DTM itself sends too. The insert-ignore per database is
``_barrier``'s (see there); DTM has no SQLite barrier, so neither has this layout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from stepping import dtm_contract as dtm

from participant_sdk._barrier import BarrierConnection, dialect_name, insert_ignore, read_committed

__all__ = [
    "DtmBranch",
    "create_dtm_barrier_table",
    "dtm_barrier",
    "dtm_barrier_table",
    "dtm_insert_msg_row",
    "dtm_query_prepared",
]

_MSG_BARRIER_ID = "01"

metadata = sa.MetaData(schema="dtm_barrier")

dtm_barrier_table = sa.Table(
    "barrier",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("trans_type", sa.String(45), server_default=""),
    sa.Column("gid", sa.String(128), server_default=""),
    sa.Column("branch_id", sa.String(128), server_default=""),
    sa.Column("op", sa.String(45), server_default=""),
    sa.Column("barrier_id", sa.String(45), server_default=""),
    sa.Column("reason", sa.String(45), server_default=""),
    sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.UniqueConstraint("gid", "branch_id", "op", "barrier_id", name="uniq_barrier"),
)


async def create_dtm_barrier_table(engine: AsyncEngine) -> None:
    """Creates ``dtm_barrier.barrier`` as DTM's Postgres and MySQL scripts do
    (idempotent; on MySQL/MariaDB the schema is the database ``dtm_barrier``)."""
    if dialect_name(engine) == "sqlite":
        raise ValueError("DTM's barrier layout is for Postgres and MySQL/MariaDB, not SQLite")
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS dtm_barrier"))
        await conn.run_sync(metadata.create_all)


@dataclass(frozen=True, slots=True)
class DtmBranch:
    """A DTM branch call's keys, from its gRPC metadata."""

    gid: str
    trans_type: str
    branch_id: str
    op: str

    @classmethod
    def from_metadata(cls, md: Iterable[tuple[str, Any]]) -> DtmBranch:
        values = {k: v for k, v in md if isinstance(v, str)}
        missing = [k for k in (dtm.KEY_GID, dtm.KEY_BRANCH_ID, dtm.KEY_OP) if not values.get(k)]
        if missing:
            raise ValueError(f"not a DTM branch call: no {', '.join(missing)} metadata")
        return cls(
            gid=values[dtm.KEY_GID],
            trans_type=values.get(dtm.KEY_TRANS_TYPE, ""),
            branch_id=values[dtm.KEY_BRANCH_ID],
            op=values[dtm.KEY_OP],
        )


async def _insert_ignore(
    conn: BarrierConnection,
    *,
    trans_type: str,
    gid: str,
    branch_id: str,
    op: str,
    barrier_id: str,
    reason: str,
) -> bool:
    return await insert_ignore(
        conn,
        dtm_barrier_table,
        {
            "trans_type": trans_type,
            "gid": gid,
            "branch_id": branch_id,
            "op": op,
            "barrier_id": barrier_id,
            "reason": reason,
        },
    )


async def dtm_barrier(
    conn: BarrierConnection, branch: DtmBranch, *, barrier_id: str = "01"
) -> bool:
    """Guards one branch call's writes, DTM's way; True means "run the body".

    ``barrier_id`` numbers the barriers of one branch call ("01", "02", ...), as DTM's
    ``BranchBarrier`` does. Commit the transaction whatever the answer.
    """
    key = {
        "trans_type": branch.trans_type,
        "gid": branch.gid,
        "branch_id": branch.branch_id,
        "barrier_id": barrier_id,
    }
    if branch.op == dtm.OP_COMPENSATE:
        # A compensation first takes its action's row: inserted means the action never
        # ran (a null compensation), and the late action finds its row taken.
        action_never_ran = await _insert_ignore(
            conn, **key, op=dtm.OP_ACTION, reason=dtm.OP_COMPENSATE
        )
        first = await _insert_ignore(conn, **key, op=dtm.OP_COMPENSATE, reason=dtm.OP_COMPENSATE)
        return first and not action_never_ran
    return await _insert_ignore(conn, **key, op=branch.op, reason=branch.op)


def _msg_key(gid: str) -> dict[str, str]:
    return {
        "trans_type": dtm.TRANS_MSG,
        "gid": gid,
        "branch_id": dtm.BRANCH_QUERY_PREPARED,
        "op": dtm.OP_MSG,
        "barrier_id": _MSG_BARRIER_ID,
    }


async def dtm_insert_msg_row(conn: BarrierConnection, gid: str) -> bool:
    """The msg's local-transaction row (reason ``msg``), in the caller's transaction."""
    return await _insert_ignore(conn, **_msg_key(gid), reason=dtm.OP_MSG)


async def dtm_query_prepared(engine: AsyncEngine, gid: str) -> Literal["committed", "rolled_back"]:
    """The back-check in DTM's layout: insert-ignore ``rollback``, read which reason won.

    A branch server answers OK for "committed" and ABORTED "FAILURE" for "rolled_back".
    """
    t = dtm_barrier_table
    async with read_committed(engine) as conn:
        await _insert_ignore(conn, **_msg_key(gid), reason="rollback")
        reason = (
            await conn.execute(
                sa.select(t.c.reason).where(
                    t.c.gid == gid,
                    t.c.branch_id == dtm.BRANCH_QUERY_PREPARED,
                    t.c.op == dtm.OP_MSG,
                    t.c.barrier_id == _MSG_BARRIER_ID,
                )
            )
        ).scalar_one()
    return "committed" if reason == dtm.OP_MSG else "rolled_back"
