"""``job.start(conn)``: the 2-phase message from a local DB transaction, with a real TM,
the example order service and banks (in this process; test_order_kill.py kills one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import bank as bank_example
import grpc
import orders as orders_example
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk import Endpoint, ParticipantServer, TmClient
from participant_sdk.client import JobState, JobStatus
from participant_sdk.errors import JobRolledBack
from tests.sdk.conftest import Banks, MakeEngine
from tm_service import TmServer

QUICK_BACKCHECK = timedelta(seconds=0.5)


class _FailSubmit(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    """The TM is unreachable just when Submit is sent (after the local commit)."""

    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method.endswith("/Submit"):
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "test: TM unreachable at Submit",
                None,
            )
        return await continuation(details, request)


@pytest_asyncio.fixture
async def orders_db(make_engine: MakeEngine) -> AsyncEngine:
    engine = await make_engine()
    await orders_example.create_schema(engine)
    return engine


@pytest_asyncio.fixture
async def order_server(orders_db: AsyncEngine) -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer(databases=orders_db, host="127.0.0.1") as server:
        yield server


def _client(tm: TmServer, order_server: ParticipantServer) -> Any:
    return TmClient.connect(tm.target, query_prepared=order_server.query_prepared_endpoint)


async def _wait_final(tm: TmClient, gid: str, timeout: float = 15) -> JobState:
    deadline = time.monotonic() + timeout
    while not (state := await tm.get(gid)).status.is_final:
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    return state


async def _order_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(orders_example.orders)
        return (await conn.execute(count)).scalar_one()


async def test_order_and_payment_commit_together(
    tm: TmServer, banks: Banks, orders_db: AsyncEngine, order_server: ParticipantServer
) -> None:
    async with TmClient.connect(
        tm.target, query_prepared=order_server.query_prepared_endpoint
    ) as c:
        state = await orders_example.place_order(
            c,
            orders_db,
            orders_example.Order("alice", "bob", 30),
            bank_a=banks.a.target,
            bank_b=banks.b.target,
            wait=True,
        )
    assert state.status is JobStatus.SUCCEEDED, state
    assert await _order_count(orders_db) == 1
    assert await banks.balances() == (70, 30)


async def test_submit_lost_after_commit_is_recovered_by_the_back_check(
    tm: TmServer, banks: Banks, orders_db: AsyncEngine, order_server: ParticipantServer
) -> None:
    async with TmClient.connect(
        tm.target,
        query_prepared=order_server.query_prepared_endpoint,
        interceptors=[_FailSubmit()],  # type: ignore[list-item]  # grpc-stubs: cast or ignore
    ) as c:
        state = await orders_example.place_order(
            c,
            orders_db,
            orders_example.Order("alice", "bob", 25),
            bank_a=banks.a.target,
            bank_b=banks.b.target,
            check_prepared_after=QUICK_BACKCHECK,
        )
        assert state.status is JobStatus.PREPARED  # committed; Submit never arrived
        final = await _wait_final(c, state.gid)
    assert final.status is JobStatus.SUCCEEDED, final
    assert await _order_count(orders_db) == 1
    assert await banks.balances() == (75, 25)


async def test_failed_commit_aborts_the_job(
    tm: TmServer, banks: Banks, orders_db: AsyncEngine, order_server: ParticipantServer
) -> None:
    async with orders_db.begin() as conn:
        await conn.execute(
            sa.text("CREATE TABLE coupons (code text, UNIQUE (code) DEFERRABLE INITIALLY DEFERRED)")
        )
    async with TmClient.connect(
        tm.target, query_prepared=order_server.query_prepared_endpoint
    ) as c:
        job = c.job(check_prepared_after=timedelta(seconds=60))  # no back-check in this test
        job.add_step(Endpoint.for_step(banks.a.target, "bank.v1.Bank", "Debit"), b"{}")
        async with orders_db.connect() as conn:
            await conn.begin()
            # A deferred constraint: the COMMIT itself fails.
            await conn.execute(sa.text("INSERT INTO coupons VALUES ('X'), ('X')"))
            with pytest.raises(sa.exc.IntegrityError):
                await job.start(conn)
        state = await c.get(job.gid)
    assert state.status is JobStatus.ABORTED
    assert "local commit failed" in state.error
    assert state.steps[0].attempts == 0
    assert await banks.balances() == (100, 0)


async def test_job_resolved_as_rolled_back_cannot_commit(
    tm: TmServer, banks: Banks, orders_db: AsyncEngine, order_server: ParticipantServer
) -> None:
    async with TmClient.connect(
        tm.target, query_prepared=order_server.query_prepared_endpoint
    ) as c:
        job = c.job(check_prepared_after=timedelta(seconds=60))
        job.add_step(Endpoint.for_step(banks.a.target, "bank.v1.Bank", "Debit"), b"{}")
        # The back-check for this gid already answered "rolled back" (e.g. it ran
        # while this transaction was slow): the transaction must not commit.
        from participant_sdk._barrier import query_prepared

        assert await query_prepared(orders_db, job.gid) == "rolled_back"
        async with orders_db.connect() as conn:
            await conn.begin()
            await conn.execute(
                orders_example.orders.insert().values(
                    id="o1", buyer="alice", seller="bob", amount=1, gid=job.gid
                )
            )
            with pytest.raises(JobRolledBack):
                await job.start(conn)
        state = await c.get(job.gid)
    assert state.status is JobStatus.ABORTED
    assert await _order_count(orders_db) == 0


async def test_back_check_asks_the_database_of_the_job(
    tm: TmServer, banks: Banks, make_engine: MakeEngine
) -> None:
    default, tenant = await make_engine(), await make_engine()
    for engine in (default, tenant):
        await orders_example.create_schema(engine)
    async with (
        ParticipantServer(
            databases={"default": default, "tenant-a": tenant}, host="127.0.0.1"
        ) as server,
        TmClient.connect(
            tm.target,
            query_prepared=server.query_prepared_endpoint,
            interceptors=[_FailSubmit()],  # type: ignore[list-item]
        ) as c,
    ):
        gids = {}
        for name, engine in (("default", default), ("tenant-a", tenant)):
            job = c.job(database=name, check_prepared_after=QUICK_BACKCHECK)
            job.add_step(
                Endpoint.for_step(banks.b.target, "bank.v1.Bank", "Credit"),
                bank_example.Transfer("bob", 10),
            )
            async with engine.connect() as conn:
                await conn.begin()
                assert (await job.start(conn)).status is JobStatus.PREPARED
            gids[name] = job.gid
        # Each job's barrier row is only in its own database: asking the other one
        # would answer ROLLED_BACK and abort the job.
        finals = [await _wait_final(c, gid) for gid in gids.values()]
    assert [f.status for f in finals] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED], finals
    assert await banks.balances() == (100, 20)
