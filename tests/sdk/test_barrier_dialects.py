"""The barrier and the 2-phase message back-check on each supported database, without a
TM: Postgres (the session's), MariaDB (a private mariadbd, see conftest) and SQLite (a
file), async and sync."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from participant_sdk import barrier
from participant_sdk._barrier import (
    dialect_name,
    insert_msg_row,
    insert_msg_row_sync,
    query_prepared,
)
from participant_sdk._dtm_barrier import (
    DtmBranch,
    create_dtm_barrier_table,
    dtm_barrier,
    dtm_insert_msg_row,
    dtm_query_prepared,
)
from participant_sdk.migrations import BARRIER_TABLE_DDL, barrier_table_ddl, create_barrier_table
from participant_sdk.testing import StepEnvironment
from tests.sdk import _mariadb

DIALECTS = ["postgresql", "mariadb", "sqlite"]

counter = sa.table("counter", sa.column("n"))


@dataclass
class Db:
    kind: str
    engine: AsyncEngine
    sync: sa.Engine


@pytest.fixture(params=DIALECTS)
def db_urls(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, sa.URL, sa.URL]]:
    """(kind, async URL, blocking URL) of a new empty database."""
    kind: str = request.param
    if kind == "postgresql":
        server = sa.make_url(request.getfixturevalue("pg_url"))
        name = f"t_{uuid.uuid4().hex[:16]}"
        admin = sa.create_engine(
            server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield (
                kind,
                server.set(drivername="postgresql+asyncpg", database=name),
                server.set(drivername="postgresql+psycopg", database=name),
            )
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    elif kind == "mariadb":
        url: sa.URL = request.getfixturevalue("make_mysql_database")()
        yield kind, url.set(drivername="mysql+aiomysql"), url
    else:
        path = tmp_path / "barrier.sqlite"
        yield kind, sa.make_url(f"sqlite+aiosqlite:///{path}"), sa.make_url(f"sqlite:///{path}")


@pytest_asyncio.fixture
async def db(db_urls: tuple[str, sa.URL, sa.URL]) -> AsyncIterator[Db]:
    """The barrier table (created twice: idempotent) and ``counter (n)`` = 0."""
    kind, async_url, sync_url = db_urls
    engine = create_async_engine(async_url)
    sync = sa.create_engine(sync_url)
    await create_barrier_table(engine)
    await create_barrier_table(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE counter (n int NOT NULL)"))
        await conn.execute(sa.text("INSERT INTO counter VALUES (0)"))
    try:
        yield Db(kind, engine, sync)
    finally:
        sync.dispose()
        await engine.dispose()


async def _count(db: Db) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(counter.c.n)) or 0)


async def _add(db: Db, delta: int, hold: float = 0.0) -> bool:
    """An ``async def`` step's body: +delta under the barrier. True if it ran."""
    async with db.engine.begin() as conn:
        if not await barrier(conn):
            return False
        await conn.execute(sa.update(counter).values(n=counter.c.n + delta))
        await asyncio.sleep(hold)
        return True


def _add_sync(db: Db, delta: int) -> bool:
    """The same body in a plain ``def`` step."""
    with db.sync.begin() as conn:
        if not barrier(conn):
            return False
        conn.execute(sa.update(counter).values(n=counter.c.n + delta))
        return True


async def _run(mode: str, env: StepEnvironment, db: Db, delta: int) -> bool:
    if mode == "async":
        return await env.run(_add, db, delta)
    return await asyncio.to_thread(env.run_sync, _add_sync, db, delta)


@pytest.fixture(params=["async", "sync"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_action_twice_runs_once(db: Db, mode: str) -> None:
    env = StepEnvironment(gid="g1", step_index=0)
    assert [await _run(mode, env, db, 1) for _ in range(3)] == [True, False, False]
    assert await _run(mode, StepEnvironment(gid="g1", step_index=1), db, 10)
    assert await _run(mode, StepEnvironment(gid="g2", step_index=0), db, 100)
    assert await _count(db) == 111


async def test_compensation_before_action_skips_both(db: Db, mode: str) -> None:
    undo = StepEnvironment(gid="g1", step_index=0, op="compensate")
    action = StepEnvironment(gid="g1", step_index=0)
    assert await _run(mode, undo, db, -5) is False  # nothing to undo
    assert await _run(mode, undo, db, -5) is False
    assert await _run(mode, action, db, 5) is False  # the late action is skipped
    assert await _count(db) == 0


async def test_compensation_after_action_runs_once(db: Db, mode: str) -> None:
    action = StepEnvironment(gid="g1", step_index=2)
    undo = StepEnvironment(gid="g1", step_index=2, op="compensate")
    assert await _run(mode, action, db, 5)
    assert [await _run(mode, undo, db, -5) for _ in range(2)] == [True, False]
    assert await _run(mode, action, db, 5) is False
    assert await _count(db) == 0


async def test_concurrent_duplicates_run_once(db: Db) -> None:
    env = StepEnvironment(gid="g1", step_index=0)
    # The other inserts wait for the first transaction, then find the key taken.
    ran = await asyncio.gather(*(env.run(_add, db, 1, 0.2) for _ in range(4)))
    assert sorted(ran) == [False, False, False, True]
    assert await _count(db) == 1


async def test_barrier_on_sessions(db: Db) -> None:
    """A duplicate leaves the session's transaction usable (on MySQL the duplicate-key
    error is caught: only that statement is rolled back)."""
    async_sessions, sync_sessions = async_sessionmaker(db.engine), sessionmaker(db.sync)

    async def body() -> bool:
        async with async_sessions() as session, session.begin():
            ran = await barrier(session)
            await session.execute(sa.update(counter).values(n=counter.c.n + (1 if ran else 0)))
            return ran

    def body_sync() -> bool:
        with sync_sessions() as session, session.begin():
            ran = barrier(session)
            session.execute(sa.update(counter).values(n=counter.c.n + (10 if ran else 0)))
            return ran

    env = StepEnvironment(gid="g1")
    assert [await env.run(body), await env.run(body)] == [True, False]
    env = StepEnvironment(gid="g2")
    ran = [await asyncio.to_thread(env.run_sync, body_sync) for _ in range(2)]
    assert ran == [True, False]
    assert await _count(db) == 11


async def test_msg_row_then_back_check(db: Db) -> None:
    async with db.engine.begin() as conn:
        assert await insert_msg_row(conn, "committed-async")
    with db.sync.begin() as conn:
        assert insert_msg_row_sync(conn, "committed-sync")
    for gid in ("committed-async", "committed-sync"):
        assert await query_prepared(db.engine, gid) == "committed"
        assert await query_prepared(db.engine, gid) == "committed"


async def test_no_msg_row_is_rolled_back_for_good(db: Db) -> None:
    assert await query_prepared(db.engine, "never") == "rolled_back"
    assert await query_prepared(db.engine, "never") == "rolled_back"
    # The rollback row owns the key: the late local transaction cannot take it.
    async with db.engine.begin() as conn:
        assert await insert_msg_row(conn, "never") is False
    with db.sync.begin() as conn:
        assert insert_msg_row_sync(conn, "never") is False
    assert await query_prepared(db.engine, "never") == "rolled_back"


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
async def test_back_check_waits_for_the_open_transaction(db: Db, commit: bool) -> None:
    """Transaction A holds the msg row; B's back-check blocks until A ends, then answers
    what A did (Postgres and InnoDB: the unique-key insert waits for A's row lock;
    SQLite: B waits for the database's write lock, within the busy timeout)."""
    gid = f"open-{commit}"
    async with db.engine.connect() as conn:
        await conn.begin()
        assert await insert_msg_row(conn, gid)
        query = asyncio.create_task(query_prepared(db.engine, gid))
        await asyncio.sleep(0.5)
        assert not query.done()  # blocked on the uncommitted row
        await (conn.commit() if commit else conn.rollback())
    assert await asyncio.wait_for(query, 10) == ("committed" if commit else "rolled_back")


# -- per-dialect details ----------------------------------------------------------


def test_ddl_per_dialect() -> None:
    assert barrier_table_ddl() == barrier_table_ddl("postgresql") == BARRIER_TABLE_DDL
    assert "gid TEXT NOT NULL" in BARRIER_TABLE_DDL
    assert "GENERATED BY DEFAULT AS IDENTITY" in BARRIER_TABLE_DDL
    mysql = barrier_table_ddl("mysql")
    assert mysql == barrier_table_ddl("mariadb")
    assert "gid VARCHAR(128) NOT NULL" in mysql
    assert "AUTO_INCREMENT" in mysql
    assert "id INTEGER NOT NULL" in barrier_table_ddl("sqlite")  # the rowid
    with pytest.raises(ValueError, match=r"'oracle' dialect; supported: postgresql, mysql"):
        barrier_table_ddl("oracle")


def test_an_unsupported_database_is_named() -> None:
    engine = sa.create_mock_engine("oracle+oracledb://", lambda *a, **k: None)
    with pytest.raises(ValueError, match=r"'oracle' dialect; supported: postgresql, mysql"):
        dialect_name(engine)  # type: ignore[arg-type]  # a mock connection


async def test_a_gid_too_long_for_mysql_is_refused(make_mysql_database: Any) -> None:
    url = make_mysql_database()
    engine = create_async_engine(url.set(drivername="mysql+aiomysql"))
    try:
        await create_barrier_table(engine)
        async with engine.begin() as conn:
            with pytest.raises(ValueError, match="129 characters; the column holds 128"):
                await insert_msg_row(conn, "g" * 129)
            assert await insert_msg_row(conn, "g" * 128)
    finally:
        await engine.dispose()


async def test_dtm_layout_on_mariadb(make_mysql_database: Any, mysql_server: sa.URL) -> None:
    url = make_mysql_database()
    engine = create_async_engine(url.set(drivername="mysql+aiomysql"))
    gid = uuid.uuid4().hex

    def branch(op: str) -> DtmBranch:
        return DtmBranch.from_metadata(
            [("dtm-gid", gid), ("dtm-trans_type", "saga"), ("dtm-branch_id", "01"), ("dtm-op", op)]
        )

    async def guarded(b: DtmBranch) -> bool:
        async with engine.begin() as conn:
            return await dtm_barrier(conn, b)

    try:
        await create_dtm_barrier_table(engine)  # the database dtm_barrier
        await create_dtm_barrier_table(engine)
        assert [await guarded(branch("action")) for _ in range(2)] == [True, False]
        assert [await guarded(branch("compensate")) for _ in range(2)] == [True, False]
        async with engine.begin() as conn:
            assert await dtm_insert_msg_row(conn, gid)
        assert await dtm_query_prepared(engine, gid) == "committed"
        assert await dtm_query_prepared(engine, gid + "-never") == "rolled_back"
    finally:
        await engine.dispose()
        _mariadb.admin(mysql_server, "DROP DATABASE IF EXISTS dtm_barrier")


async def test_dtm_layout_refuses_sqlite(tmp_path: Any) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'dtm.sqlite'}")
    try:
        with pytest.raises(ValueError, match="not SQLite"):
            await create_dtm_barrier_table(engine)
    finally:
        await engine.dispose()
