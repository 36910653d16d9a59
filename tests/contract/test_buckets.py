"""Buckets (issue 16 point 4; docs/scaling.md "B. Citus"): every stored job and step
carries ``bucket_of(gid)``; migration 0008 backfills it; and the per-bucket claim
(``STEPPING_CLAIM_BY_BUCKET``) takes only due, unleased jobs, never one job twice, and
gives every due bucket its share."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text

from tests.contract.conftest import StoreUnderTest
from tests.contract.test_job_store import LEASE, _new
from tm_service.domain import BUCKETS, NewTransaction, StepStatus, TxStatus, bucket_of
from tm_service.store import InMemoryStore, PostgresStore, upgrade
from tm_service.store._postgres import plan_bucket_claims

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
    # A TM older than migration 0008 during a rolling upgrade, or a bulk loader in SQL.
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


async def test_migration_0008_backfills_the_buckets_of_unfinished_jobs(
    make_database: Callable[..., Awaitable[str]],
) -> None:
    url = await make_database(migrated=False)
    store = PostgresStore.from_url(url, pool_size=1)
    try:
        await upgrade(store.engine, "0007")
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
            jobs = await conn.fetch("SELECT gid, status, bucket FROM stepping_transactions")
            assert len(jobs) == 12001
            unfinished = [r for r in jobs if r["status"] == 2]
            assert len(unfinished) == 8001
            assert all(r["bucket"] == bucket_of(r["gid"]) for r in unfinished)
            assert len({r["bucket"] for r in unfinished}) == 256
            # Finished jobs are left alone (no claim takes them; no long lock for them).
            assert all(r["bucket"] is None for r in jobs if r["status"] == 3)
            wrong_steps = await conn.fetchval(
                "SELECT count(*) FROM stepping_steps s JOIN stepping_transactions t USING (gid)"
                " WHERE s.bucket IS DISTINCT FROM t.bucket"
            )
            assert wrong_steps == 0
        finally:
            await conn.close()
    finally:
        await store.close()


# -- the per-bucket claim -----------------------------------------------------------------
def test_the_plan_gives_each_due_bucket_a_share_and_the_leftovers_to_the_big_ones() -> None:
    due = {7: 1000, **{b: 1 for b in range(10, 20)}}
    for start in (0, 8, 15, 200):
        plan = dict(plan_bucket_claims(due, 50, start=start, share=8))
        assert {b: plan[b] for b in range(10, 20)} == {b: 1 for b in range(10, 20)}
        assert plan[7] == 40 and sum(plan.values()) == 50
    # Never more than is due, never more than the room.
    assert dict(plan_bucket_claims({1: 2, 2: 3}, 100, start=0, share=8)) == {1: 2, 2: 3}
    assert plan_bucket_claims({}, 10, start=0, share=8) == []
    assert plan_bucket_claims({5: 0}, 10, start=0, share=8) == []
    # A backlog everywhere: a share each, in turn from ``start``, wrapping around.
    many = {b: 10 for b in range(256)}
    plan_many = plan_bucket_claims(many, 100, start=250, share=8)
    assert [b for b, _ in plan_many] == [*range(250, 256), *range(7)]
    assert [n for _, n in plan_many] == [8] * 12 + [4]
    assert plan_bucket_claims(many, 3, start=0, share=8) == [(0, 3)]
    # Due jobs spread thin: as many buckets as it takes to fill the room.
    thin = {b: 1 for b in range(0, 200, 2)}
    plan_thin = plan_bucket_claims(thin, 60, start=1, share=8)
    assert plan_thin == [(b, 1) for b in range(2, 122, 2)]


async def _due_jobs(store: PostgresStore, news: list[NewTransaction]) -> list[str]:
    """Insert ``news`` as submitted jobs and release them: due now, nobody's."""
    made = await asyncio.gather(
        *(store.insert(n, status=TxStatus.SUBMITTED, owner="r0", lease=LEASE) for n in news)
    )
    for m in made:
        assert m is not None
        await store.release(m[0])
    return [n.gid for n in news]


def _in_bucket(bucket: int, n: int, prefix: str) -> list[NewTransaction]:
    """``n`` new jobs whose gids fall in ``bucket``."""
    out: list[NewTransaction] = []
    i = 0
    while len(out) < n:
        i += 1
        gid = f"{prefix}-{bucket}-{i}"
        if bucket_of(gid) == bucket:
            template = _new(1)
            out.append(NewTransaction(gid, template.steps, template.options, None, "db", b"fp"))
    return out


@pytest_asyncio.fixture
async def by_bucket(database_url: str) -> AsyncIterator[Callable[[], PostgresStore]]:
    made: list[PostgresStore] = []

    def make() -> PostgresStore:
        store = PostgresStore.from_url(database_url, pool_size=4, claim_by_bucket=True)
        made.append(store)
        return store

    yield make
    for s in made:
        await s.close()


async def test_claim_by_bucket_takes_only_due_unleased_jobs(
    by_bucket: Callable[[], PostgresStore],
) -> None:
    store = by_bucket()
    due = await _due_jobs(store, [_new(1) for _ in range(20)])
    held = await store.insert(_new(1), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    later = await store.insert(
        _new(1, check_prepared_after=60.0), status=TxStatus.PREPARED, owner=None, lease=LEASE
    )
    done = await store.insert(_new(1), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert held is not None and later is not None and done is not None
    await store.set_status(done[0], TxStatus.SUCCEEDED, lease=LEASE)  # final: never due
    claimed = await store.claim_due(owner="r2", lease=LEASE, limit=100)
    assert sorted(j.gid for j in claimed) == sorted(due)
    assert all(j.lease_token == 2 and len(j.specs) == 1 for j in claimed)
    assert await store.claim_due(owner="r3", lease=LEASE, limit=100) == []  # all leased now
    count, _ = await store.due_stats()
    assert count == 0


async def test_claim_by_bucket_never_gives_one_job_to_two_claimers(
    by_bucket: Callable[[], PostgresStore],
) -> None:
    a, b = by_bucket(), by_bucket()
    gids = await _due_jobs(a, [_new(1) for _ in range(300)])
    claims: dict[str, list[str]] = {"a": [], "b": []}

    async def claimer(name: str, store: PostgresStore) -> None:
        while jobs := await store.claim_due(owner=name, lease=LEASE, limit=17):
            claims[name] += [j.gid for j in jobs]

    await asyncio.gather(claimer("a", a), claimer("b", b))
    assert not set(claims["a"]) & set(claims["b"])
    assert len(claims["a"]) + len(claims["b"]) == 300
    assert set(claims["a"]) | set(claims["b"]) == set(gids)
    assert claims["a"] and claims["b"]


async def test_claim_by_bucket_gives_every_due_bucket_its_share(
    by_bucket: Callable[[], PostgresStore],
) -> None:
    store = by_bucket()
    big = await _due_jobs(store, _in_bucket(3, 1000, "big"))
    singles = [(await _due_jobs(store, _in_bucket(b, 1, "one")))[0] for b in range(100, 110)]
    claimed = [j.gid for j in await store.claim_due(owner="r1", lease=LEASE, limit=50)]
    assert len(claimed) == 50
    assert set(singles) <= set(claimed)
    assert len(set(claimed) & set(big)) == 40


@pytest.mark.parametrize("limit", [1, 5])
async def test_claim_by_bucket_respects_a_small_limit(
    by_bucket: Callable[[], PostgresStore], limit: int
) -> None:
    store = by_bucket()
    await _due_jobs(store, [_new(1) for _ in range(30)])
    assert len(await store.claim_due(owner="r1", lease=LEASE, limit=limit)) == limit


async def test_claim_by_bucket_takes_no_more_than_its_share_of_one_bucket(
    by_bucket: Callable[[], PostgresStore],
) -> None:
    store = by_bucket()
    nine = await _due_jobs(store, _in_bucket(9, 8, "nine"))
    first = [j.gid for j in await store.claim_due(owner="r1", lease=LEASE, limit=3)]
    assert len(first) == 3 and set(first) <= set(nine)
    rest = [j.gid for j in await store.claim_due(owner="r1", lease=LEASE, limit=30)]
    assert sorted(first + rest) == sorted(nine)
