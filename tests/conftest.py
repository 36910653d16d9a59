"""Shared fixtures: one real Postgres per test session, a fresh database per test, a TM.

Postgres is ``STEPPING_TEST_DATABASE_URL`` when set, else an embedded server started
here (fsync off: tests do not survive power loss, they survive SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.integration.participant import Participant
from tm_service import Settings, TmServer
from tm_service.store import EmbeddedPostgres, PostgresStore, normalize_url, upgrade

_TEMPLATE = "stepping_test_template"


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The session's Postgres server (URL of its admin database)."""
    external = os.environ.get("STEPPING_TEST_DATABASE_URL")
    if external:
        yield normalize_url(external)
        return
    data = Path(tempfile.mkdtemp(prefix="stepping-test-pg-", dir="/var/tmp"))
    pg = EmbeddedPostgres(data / "data", fsync=False)
    try:
        yield pg.start()
    finally:
        pg.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def _template(pg_url: str) -> str:
    """A database with the TM schema, cloned for each test (fast CREATE DATABASE)."""
    conn = await asyncpg.connect(_plain(pg_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{_TEMPLATE}"')
    finally:
        await conn.close()
    store = PostgresStore.from_url(_with_db(pg_url, _TEMPLATE), pool_size=1)
    try:
        await upgrade(store.engine)
    finally:
        await store.close()
    return _TEMPLATE


@pytest_asyncio.fixture
async def make_database(
    pg_url: str, _template: str
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await make_database(migrated=False)`` → URL of a new database, dropped afterwards."""
    created: list[str] = []

    async def make(*, migrated: bool = False) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        template = _template if migrated else "template0"
        conn = await asyncpg.connect(_plain(pg_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()
        created.append(name)
        return _with_db(pg_url, name)

    yield make
    conn = await asyncpg.connect(_plain(pg_url))
    try:
        for name in created:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def database_url(make_database: Callable[..., Awaitable[str]]) -> str:
    """A fresh database with the TM schema."""
    return await make_database(migrated=True)


@pytest_asyncio.fixture
async def participant() -> AsyncIterator[Participant]:
    """A plain-grpcio participant on 127.0.0.1, port 0, recording every call."""
    p = await Participant().start()
    yield p
    await p.stop()


@pytest.fixture
def tm_settings_overrides() -> dict[str, Any]:
    """Override in a test module to tune the TM of the ``tm`` fixture."""
    return {}


def test_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a TM under test: fast polling and short leases."""
    base: dict[str, Any] = {
        "database_url": database_url,
        "listen": "127.0.0.1:0",
        "poll_interval_seconds": 0.1,
        "lease_seconds": 5.0,
        "shutdown_grace_seconds": 2.0,
        "db_pool_size": 5,
        "migrate_on_start": False,
        # Tests retry fast (tens of ms); the limit's own tests set it back.
        "min_retry_interval_seconds": 0.01,
    }
    base.update(overrides)
    return Settings.load(env={}, overrides=base)


@pytest_asyncio.fixture
async def tm(database_url: str, tm_settings_overrides: dict[str, Any]) -> AsyncIterator[TmServer]:
    """A TM server in this process on 127.0.0.1, port 0 (``tm.target``)."""
    server = TmServer(test_settings(database_url, **tm_settings_overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)
