"""The barrier and QueryPrepared on a real Postgres, without a TM."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine
from stepping.participant.v1 import participant_pb2, participant_pb2_grpc

from participant_sdk import ParticipantServer, barrier
from participant_sdk._barrier import insert_msg_row
from participant_sdk.migrations import create_barrier_table
from participant_sdk.testing import StepEnvironment
from tests.sdk.conftest import MakeEngine

ROLLED_BACK = participant_pb2.PREPARED_OUTCOME_ROLLED_BACK
COMMITTED = participant_pb2.PREPARED_OUTCOME_COMMITTED

counter = sa.table("counter", sa.column("n"))


async def _ledger(make_engine: MakeEngine) -> AsyncEngine:
    engine = await make_engine()
    await create_barrier_table(engine)
    await create_barrier_table(engine)  # idempotent
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE counter (n int NOT NULL)"))
        await conn.execute(sa.text("INSERT INTO counter VALUES (0)"))
    return engine


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(counter.c.n)) or 0)


async def _add(engine: AsyncEngine, delta: int, hold: float = 0.0) -> bool:
    """The body of a step: +delta under the barrier. True if it ran."""
    async with engine.begin() as conn:
        if not await barrier(conn):
            return False
        await conn.execute(sa.update(counter).values(n=counter.c.n + delta))
        await asyncio.sleep(hold)
        return True


async def test_duplicate_actions_run_once(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    env = StepEnvironment(gid="g1", step_index=0)
    ran = [await env.run(_add, engine, 1) for _ in range(3)]
    assert ran == [True, False, False]
    assert await _count(engine) == 1
    # Another step of the same job, and the same step of another job, are not duplicates.
    assert await StepEnvironment(gid="g1", step_index=1).run(_add, engine, 10)
    assert await StepEnvironment(gid="g2", step_index=0).run(_add, engine, 100)
    assert await _count(engine) == 111


async def test_concurrent_duplicates_run_once(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    env = StepEnvironment(gid="g1", step_index=0)
    # The second insert waits for the first transaction, then finds the key taken.
    ran = await asyncio.gather(*(env.run(_add, engine, 1, 0.2) for _ in range(4)))
    assert sorted(ran) == [False, False, False, True]
    assert await _count(engine) == 1


async def test_rolled_back_body_runs_again(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    env = StepEnvironment(gid="g1", step_index=0)

    async def failing() -> None:
        async with engine.begin() as conn:
            assert await barrier(conn)
            await conn.execute(sa.update(counter).values(n=counter.c.n + 1))
            raise ConnectionError("db went away mid-step")

    with pytest.raises(ConnectionError):
        await env.run(failing)
    assert await env.run(_add, engine, 1)  # the retry does the work
    assert await _count(engine) == 1


async def test_compensation_after_action_runs_once(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    action = StepEnvironment(gid="g1", step_index=2)
    undo = StepEnvironment(gid="g1", step_index=2, op="compensate")
    assert await action.run(_add, engine, 5)
    assert [await undo.run(_add, engine, -5) for _ in range(2)] == [True, False]
    assert await action.run(_add, engine, 5) is False
    assert await _count(engine) == 0


async def test_compensation_before_action_cancels_the_late_action(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    undo = StepEnvironment(gid="g1", step_index=0, op="compensate")
    action = StepEnvironment(gid="g1", step_index=0)
    assert await undo.run(_add, engine, -5) is False  # nothing to undo: skipped
    assert await undo.run(_add, engine, -5) is False
    assert await action.run(_add, engine, 5) is False  # the late action is skipped
    assert await _count(engine) == 0


async def test_several_barriers_in_one_call(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)

    async def twice() -> list[bool]:
        return [await _add(engine, 1), await _add(engine, 1)]

    env = StepEnvironment(gid="g1", step_index=0)
    assert await env.run(twice) == [True, True]
    assert await env.run(twice) == [False, False]
    assert await _count(engine) == 2


async def test_barrier_outside_a_step_raises(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    async with engine.begin() as conn:
        with pytest.raises(RuntimeError, match="not in a step"):
            await barrier(conn)


async def test_barrier_works_on_a_session(make_engine: MakeEngine) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    engine = await _ledger(make_engine)
    sessions = async_sessionmaker(engine)

    async def body() -> bool:
        async with sessions() as session, session.begin():
            if not await barrier(session):
                return False
            await session.execute(sa.update(counter).values(n=counter.c.n + 1))
            return True

    env = StepEnvironment(gid="g1")
    assert [await env.run(body), await env.run(body)] == [True, False]
    assert await _count(engine) == 1


# -- QueryPrepared ---------------------------------------------------------------


async def _query(target: str, gid: str, database: str = "") -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = participant_pb2_grpc.ParticipantServiceStub(channel)
        response = await stub.QueryPrepared(
            participant_pb2.QueryPreparedRequest(gid=gid, database=database), timeout=10
        )
    return int(response.outcome)


async def test_query_prepared(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    async with engine.begin() as conn:
        assert await insert_msg_row(conn, "committed-gid")
    async with ParticipantServer(databases=engine, host="127.0.0.1") as server:
        assert await _query(server.target, "committed-gid") == COMMITTED
        assert await _query(server.target, "committed-gid") == COMMITTED
        assert await _query(server.target, "never-gid") == ROLLED_BACK
        # The rollback row now owns the key: the late local transaction cannot commit it.
        async with engine.begin() as conn:
            assert await insert_msg_row(conn, "never-gid") is False


async def test_query_prepared_waits_for_the_open_transaction(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    async with ParticipantServer(databases=engine, host="127.0.0.1") as server:
        for commit, expected in ((True, COMMITTED), (False, ROLLED_BACK)):
            gid = f"open-{commit}"
            async with engine.connect() as conn:
                await conn.begin()
                assert await insert_msg_row(conn, gid)
                query = asyncio.create_task(_query(server.target, gid))
                await asyncio.sleep(0.3)
                assert not query.done()  # blocked on the uncommitted row
                await (conn.commit() if commit else conn.rollback())
            assert await asyncio.wait_for(query, 5) == expected


async def test_query_prepared_uses_the_named_database(make_engine: MakeEngine) -> None:
    default, tenant = await _ledger(make_engine), await _ledger(make_engine)
    async with tenant.begin() as conn:
        assert await insert_msg_row(conn, "g-tenant")
    async with ParticipantServer(
        databases={"default": default, "tenant-a": tenant}, host="127.0.0.1"
    ) as server:
        assert await _query(server.target, "g-tenant", "tenant-a") == COMMITTED
        assert await _query(server.target, "g-tenant", "") == ROLLED_BACK
        assert await _query(server.target, "g-tenant", "default") == ROLLED_BACK
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _query(server.target, "g-tenant", "nope")
        assert err.value.code() is grpc.StatusCode.NOT_FOUND


async def test_health_and_graceful_stop(make_engine: MakeEngine) -> None:
    engine = await _ledger(make_engine)
    server = ParticipantServer(databases=engine, host="127.0.0.1")
    await server.start()
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "stepping.participant.v1.ParticipantService"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await server.stop(grace=0.5)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
