"""Fixtures of the SDK tests: bank participants from examples/python on fresh databases,
a TmClient on the ``tm`` fixture's TM, and MySQL/MariaDB databases for the barrier's
dialect tests (``STEPPING_TEST_MYSQL_URL`` when set, else a private mariadbd)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from participant_sdk import ParticipantServer, TmClient
from tests.sdk import _mariadb
from tm_service import TmServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import bank as bank_example  # noqa: E402  (found through EXAMPLES)

MakeEngine = Callable[[], Awaitable[AsyncEngine]]


@pytest_asyncio.fixture
async def make_engine(
    make_database: Callable[..., Awaitable[str]],
) -> AsyncIterator[MakeEngine]:
    """``await make_engine()`` → an engine on a new empty database (disposed afterwards)."""
    engines: list[AsyncEngine] = []

    async def make() -> AsyncEngine:
        engine = create_async_engine(await make_database(), pool_size=10)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()


async def balance(engine: AsyncEngine, account: str) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            sa.select(bank_example.accounts.c.balance).where(
                bank_example.accounts.c.name == account
            )
        )
    assert value is not None, f"no account {account}"
    return int(value)


@dataclass
class Banks:
    """Bank A (alice: 100) and bank B (bob: 0), each its own database and server."""

    a: ParticipantServer
    b: ParticipantServer
    db_a: AsyncEngine
    db_b: AsyncEngine

    async def balances(self) -> tuple[int, int]:
        return await balance(self.db_a, "alice"), await balance(self.db_b, "bob")


@pytest_asyncio.fixture
async def banks(make_engine: MakeEngine) -> AsyncIterator[Banks]:
    db_a, db_b = await make_engine(), await make_engine()
    await bank_example.create_schema(db_a, {"alice": 100})
    await bank_example.create_schema(db_b, {"bob": 0})
    service = bank_example.SERVICE
    async with (
        ParticipantServer(
            steps=bank_example.Bank(db_a).steps(), service=service, host="127.0.0.1"
        ) as a,
        ParticipantServer(
            steps=bank_example.Bank(db_b).steps(), service=service, host="127.0.0.1"
        ) as b,
    ):
        yield Banks(a, b, db_a, db_b)


@pytest_asyncio.fixture
async def tm_client(tm: TmServer) -> AsyncIterator[TmClient]:
    async with TmClient.connect(tm.target, timeout=5) as client:
        yield client


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[sa.URL]:
    """The session's MySQL/MariaDB server (a URL without a database, pymysql driver).

    ``STEPPING_TEST_MYSQL_URL`` when set; else a private mariadbd, started on first use.
    Without mariadbd the test skips, except under ``CI=true``, where it fails.
    """
    external = os.environ.get("STEPPING_TEST_MYSQL_URL")
    if external:
        yield _mariadb.server_url(external)
        return
    binary = _mariadb.mariadbd()
    if binary is None:
        _mariadb.skip_or_fail(f"mariadbd missing: {_mariadb.INSTALL_HINT}")
        raise AssertionError("unreachable")  # skip_or_fail raises
    server = _mariadb.MariaDB(binary)
    try:
        yield _mariadb.server_url(server.start())
    finally:
        server.stop()


@pytest.fixture
def make_mysql_database(mysql_server: sa.URL) -> Iterator[Callable[[], sa.URL]]:
    """``make_mysql_database()`` → the URL (pymysql) of a new empty database, dropped
    afterwards; ``.set(drivername="mysql+aiomysql")`` for the async one."""
    created: list[str] = []

    def make() -> sa.URL:
        name = f"t_{uuid.uuid4().hex[:16]}"
        _mariadb.admin(mysql_server, f"CREATE DATABASE `{name}`")
        created.append(name)
        return mysql_server.set(database=name)

    yield make
    for name in created:
        _mariadb.admin(mysql_server, f"DROP DATABASE IF EXISTS `{name}`")
