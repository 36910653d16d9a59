"""``job.start(conn)`` inside a MariaDB or SQLite transaction, with a real TM: the
QueryPrepared back-check answered from that database (Postgres: test_start_in_transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import bank as bank_example
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from participant_sdk import Endpoint, ParticipantServer, TmClient
from participant_sdk.client import JobStatus
from participant_sdk.migrations import create_barrier_table
from tests.sdk import _mariadb
from tests.sdk.conftest import Banks
from tests.sdk.test_start_in_transaction import _FailSubmit, _wait_final
from tm_service import TmServer

QUICK_BACKCHECK = timedelta(seconds=0.5)

metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("gid", sa.String(128), nullable=False, unique=True),
)


@pytest_asyncio.fixture(params=["mariadb", "sqlite"])
async def local_db(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    """The service's own database: the barrier table and ``orders``."""
    if request.param == "mariadb":
        url = request.getfixturevalue("make_mysql_database")().set(drivername="mysql+aiomysql")
    else:
        url = sa.make_url(f"sqlite+aiosqlite:///{tmp_path / 'orders.sqlite'}")
    engine = create_async_engine(url)
    await create_barrier_table(engine)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def back_check(local_db: AsyncEngine) -> AsyncIterator[ParticipantServer]:
    """The participant answering QueryPrepared from ``local_db``."""
    async with ParticipantServer(databases=local_db, host="127.0.0.1") as server:
        yield server


def _credit(c: TmClient, banks: Banks) -> Any:
    job = c.job(check_prepared_after=QUICK_BACKCHECK)
    job.add_step(
        Endpoint.for_step(banks.b.target, bank_example.SERVICE, "Credit"),
        bank_example.Transfer("bob", 10),
    )
    return job


async def _orders(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(orders)) or 0)


async def test_committed_transaction_runs_the_job(
    tm: TmServer, banks: Banks, local_db: AsyncEngine, back_check: ParticipantServer
) -> None:
    async with TmClient.connect(tm.target, query_prepared=back_check.query_prepared_endpoint) as c:
        job = _credit(c, banks)
        async with local_db.connect() as conn:
            await conn.begin()
            await conn.execute(orders.insert().values(id="o1", gid=job.gid))
            state = await job.start(conn, wait=True)
    assert state.status is JobStatus.SUCCEEDED, state
    assert await _orders(local_db) == 1
    assert await banks.balances() == (100, 10)


async def test_back_check_finds_the_commit_when_submit_is_lost(
    tm: TmServer, banks: Banks, local_db: AsyncEngine, back_check: ParticipantServer
) -> None:
    async with TmClient.connect(
        tm.target,
        query_prepared=back_check.query_prepared_endpoint,
        interceptors=[_FailSubmit()],  # type: ignore[list-item]  # grpc-stubs: cast or ignore
    ) as c:
        job = _credit(c, banks)
        async with local_db.connect() as conn:
            await conn.begin()
            await conn.execute(orders.insert().values(id="o1", gid=job.gid))
            assert (await job.start(conn)).status is JobStatus.PREPARED  # Submit lost
        final = await _wait_final(c, job.gid)
    assert final.status is JobStatus.SUCCEEDED, final
    assert await banks.balances() == (100, 10)


async def test_back_check_finds_the_rollback_and_aborts_the_job(
    tm: TmServer, banks: Banks, local_db: AsyncEngine, back_check: ParticipantServer
) -> None:
    """The connection is lost at COMMIT: the client cannot know the outcome, so the job
    stays PREPARED; the database rolled the transaction back, the back-check finds no
    msg row and the TM aborts the job without running its step."""
    mariadb = local_db.dialect.name in ("mysql", "mariadb")

    def lost_at_commit(conn: sa.Connection) -> None:
        if mariadb:  # the server drops the session: COMMIT then fails as a disconnect
            thread_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
            url = _mariadb.server_url(local_db.url.render_as_string(hide_password=False))
            _mariadb.admin(url, f"KILL {int(thread_id)}")
        else:  # SQLite: the connection closes (its transaction rolls back) under COMMIT
            conn.invalidate()
            raise ConnectionResetError("test: connection lost at COMMIT")

    async with TmClient.connect(tm.target, query_prepared=back_check.query_prepared_endpoint) as c:
        job = _credit(c, banks)
        sa.event.listen(local_db.sync_engine, "commit", lost_at_commit)
        try:
            async with local_db.connect() as conn:
                await conn.begin()
                await conn.execute(orders.insert().values(id="o1", gid=job.gid))
                with pytest.raises((sa.exc.DBAPIError, ConnectionResetError)) as lost:
                    await job.start(conn)
                if mariadb:
                    assert isinstance(lost.value, sa.exc.DBAPIError)
                    assert lost.value.connection_invalidated, lost.value
            assert (await c.get(job.gid)).status is JobStatus.PREPARED
        finally:
            sa.event.remove(local_db.sync_engine, "commit", lost_at_commit)
        final = await _wait_final(c, job.gid)
    assert final.status is JobStatus.ABORTED, final
    assert final.steps[0].attempts == 0
    assert await _orders(local_db) == 0
    assert await banks.balances() == (100, 0)
