"""Buckets (issue 16 point 4; docs/scaling.md "B. Citus"): every stored job and step
carries ``bucket_of(gid)``; migration 0007 backfills it."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest_asyncio
from sqlalchemy import text

from tests.contract.conftest import StoreUnderTest
from tests.contract.test_job_store import LEASE, _new
from tm_service.domain import BUCKETS, StepStatus, TxStatus, bucket_of
from tm_service.store import InMemoryStore, PostgresStore, upgrade

# Pinned: a change of bucket_of would move every stored job to another bucket (shard).
VECTORS = {
    "": 0,
    "a": 0xE8B7BE43 % 256,
    "order-42": zlib.crc32(b"order-42") % 256,
    "héllo-日本": zlib.crc32("héllo-日本".encode()) % 256,
}


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _stored_buckets(sut: StoreUnderTest, gid: str) -> tuple[int, list[int]]:
    """The job's stored bucket and its steps' ones."""
    store = sut.store
    if isinstance(store, InMemoryStore):
        return store._rows[gid].bucket, []
    assert isinstance(store, PostgresStore)
    async with store.engine.connect() as conn:
        job = (
            await conn.execute(
                text("SELECT bucket FROM stepping_transactions WHERE gid = :g"), {"g": gid}
            )
        ).scalar_one()
        steps = (
            await conn.execute(
                text("SELECT bucket FROM stepping_steps WHERE gid = :g ORDER BY idx"), {"g": gid}
            )
        ).scalars()
        return int(job), [int(b) for b in steps]


def test_bucket_of_is_crc32_of_the_utf8_gid_mod_256() -> None:
    assert BUCKETS == 256
    for gid, bucket in VECTORS.items():
        assert bucket_of(gid) == bucket, gid


async def test_the_bucket_is_stored_with_the_job_and_its_steps(sut: StoreUnderTest) -> None:
    for status in (TxStatus.SUBMITTED, TxStatus.PREPARED):
        new = _new(3)
        made = await sut.store.insert(new, status=status, owner="r1", lease=LEASE)
        assert made is not None
        job, steps = await _stored_buckets(sut, new.gid)
        assert job == zlib.crc32(new.gid.encode()) % 256
        if sut.name == "postgres":
            assert steps == [job] * 3
        if status is TxStatus.SUBMITTED:  # stable: the job's writes leave it as it was
            await sut.store.step_done(
                made[0], 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"r", lease=LEASE
            )
            await sut.store.set_status(made[0], TxStatus.SUCCEEDED, lease=LEASE)
            assert await _stored_buckets(sut, new.gid) == (job, steps)


# -- Postgres only: the SQL side --------------------------------------------------------
@pytest_asyncio.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(_plain(database_url))
    yield conn
    await conn.close()


async def test_sql_stepping_bucket_matches_python(pg: asyncpg.Connection) -> None:
    for gid in [*VECTORS, "x" * 128, "3f2a9c0e4b5d6e7f8a9b0c1d2e3f4a5b"]:
        assert await pg.fetchval("SELECT stepping_bucket($1)", gid) == bucket_of(gid), gid


async def test_a_writer_that_leaves_the_bucket_out_gets_it_from_the_trigger(
    pg: asyncpg.Connection,
) -> None:
    # A TM older than migration 0007 during a rolling upgrade, or a bulk loader in SQL.
    await pg.execute(
        "INSERT INTO stepping_transactions (gid, status, mode, concurrent, step_timeout,"
        " check_prepared_after, fingerprint, next_time) VALUES ('old-tm-1', 2, 1, false, 1, 1,"
        " '\\x00', now())"
    )
    await pg.execute(
        "INSERT INTO stepping_steps (gid, idx, name, action_target, action_method, payload,"
        " headers, initial_interval, backoff_coefficient, maximum_interval, maximum_attempts,"
        " timeout, status) VALUES ('old-tm-1', 0, 's', 'h:1', '/M', '', '{}', 1, 2, 3, 0, 1, 1)"
    )
    assert await pg.fetchval("SELECT bucket FROM stepping_transactions") == bucket_of("old-tm-1")
    assert await pg.fetchval("SELECT bucket FROM stepping_steps") == bucket_of("old-tm-1")


async def test_migration_0007_backfills_the_buckets_of_existing_rows(
    make_database: Callable[..., Awaitable[str]],
) -> None:
    url = await make_database(migrated=False)
    store = PostgresStore.from_url(url, pool_size=1)
    try:
        await upgrade(store.engine, "0006")
        conn = await asyncpg.connect(_plain(url))
        try:
            # More than two backfill batches (5000 gids each), gids in no bucket order.
            await conn.execute(
                "INSERT INTO stepping_transactions (gid, status, mode, concurrent, step_timeout,"
                " check_prepared_after, fingerprint, next_time, finish_time)"
                " SELECT 'g-' || md5(i::text), CASE WHEN i % 3 = 0 THEN 3 ELSE 2 END, 1, false,"
                " 1, 1, '\\x00', now(), NULL FROM generate_series(1, 12001) i"
            )
            await conn.execute(
                "INSERT INTO stepping_steps (gid, idx, name, action_target, action_method,"
                " payload, headers, initial_interval, backoff_coefficient, maximum_interval,"
                " maximum_attempts, timeout, status)"
                " SELECT gid, k, 's', 'h:1', '/M', '', '{}', 1, 2, 3, 0, 1, 1"
                " FROM stepping_transactions, generate_series(0, 1) k"
            )
            await upgrade(store.engine)
            jobs = await conn.fetch("SELECT gid, bucket FROM stepping_transactions")
            assert len(jobs) == 12001
            assert all(r["bucket"] == bucket_of(r["gid"]) for r in jobs)
            assert len({r["bucket"] for r in jobs}) == 256
            wrong_steps = await conn.fetchval(
                "SELECT count(*) FROM stepping_steps s JOIN stepping_transactions t USING (gid)"
                " WHERE s.bucket IS DISTINCT FROM t.bucket"
            )
            assert wrong_steps == 0
            nullable = await conn.fetch(
                "SELECT table_name FROM information_schema.columns"
                " WHERE column_name = 'bucket' AND is_nullable = 'YES'"
            )
            assert nullable == []
        finally:
            await conn.close()
    finally:
        await store.close()
