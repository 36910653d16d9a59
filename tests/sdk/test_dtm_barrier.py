"""The DTM barrier layout (dtm_barrier.barrier) on a real Postgres."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk._dtm_barrier import (
    DtmBranch,
    create_dtm_barrier_table,
    dtm_barrier,
    dtm_insert_msg_row,
    dtm_query_prepared,
)
from tests.sdk.conftest import MakeEngine

pytestmark = pytest.mark.asyncio


def _branch(op: str, gid: str = "g1") -> DtmBranch:
    return DtmBranch.from_metadata(
        [("dtm-gid", gid), ("dtm-trans_type", "saga"), ("dtm-branch_id", "01"), ("dtm-op", op)]
    )


async def _engine(make_engine: MakeEngine) -> AsyncEngine:
    engine = await make_engine()
    await create_dtm_barrier_table(engine)
    await create_dtm_barrier_table(engine)  # idempotent
    return engine


async def _guarded(engine: AsyncEngine, branch: DtmBranch) -> bool:
    async with engine.begin() as conn:
        return await dtm_barrier(conn, branch)


async def _rows(engine: AsyncEngine) -> list[tuple[str, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT trans_type, gid, branch_id, op, barrier_id, reason"
                " FROM dtm_barrier.barrier ORDER BY id"
            )
        )
        return [tuple(r) for r in result]


async def test_action_once_then_compensation_once(make_engine: MakeEngine) -> None:
    engine = await _engine(make_engine)
    assert await _guarded(engine, _branch("action"))
    assert not await _guarded(engine, _branch("action"))  # a duplicate delivery
    assert await _guarded(engine, _branch("compensate"))
    assert not await _guarded(engine, _branch("compensate"))
    assert await _rows(engine) == [
        ("saga", "g1", "01", "action", "01", "action"),
        ("saga", "g1", "01", "compensate", "01", "compensate"),
    ]


async def test_null_compensation_and_hanging_action_are_skipped(make_engine: MakeEngine) -> None:
    engine = await _engine(make_engine)
    assert not await _guarded(engine, _branch("compensate", "g2"))  # action never ran
    assert not await _guarded(engine, _branch("action", "g2"))  # the late action: skipped
    assert await _rows(engine) == [
        ("saga", "g2", "01", "action", "01", "compensate"),
        ("saga", "g2", "01", "compensate", "01", "compensate"),
    ]


async def test_msg_row_and_back_check(make_engine: MakeEngine) -> None:
    engine = await _engine(make_engine)
    async with engine.begin() as conn:
        assert await dtm_insert_msg_row(conn, "committed-gid")
    assert await dtm_query_prepared(engine, "committed-gid") == "committed"
    assert await dtm_query_prepared(engine, "never-gid") == "rolled_back"
    async with engine.begin() as conn:  # too late: the back-check's row won
        assert not await dtm_insert_msg_row(conn, "never-gid")
    rows = await _rows(engine)
    assert ("msg", "committed-gid", "00", "msg", "01", "msg") in rows
    assert ("msg", "never-gid", "00", "msg", "01", "rollback") in rows


async def test_back_check_waits_for_an_open_local_transaction(make_engine: MakeEngine) -> None:
    engine = await _engine(make_engine)
    async with engine.begin() as conn:
        await dtm_insert_msg_row(conn, "slow-gid")
        check = asyncio.create_task(dtm_query_prepared(engine, "slow-gid"))
        await asyncio.sleep(0.3)
        assert not check.done()  # blocked on the open transaction's key
    assert await asyncio.wait_for(check, 30) == "committed"


async def test_metadata_without_dtm_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="dtm-gid"):
        DtmBranch.from_metadata([("stepping-gid", "g")])
