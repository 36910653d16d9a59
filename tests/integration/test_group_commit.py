"""Group commit: many jobs share statements and commits, and each keeps its guarantees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio
from stepping.tm.v1 import tm_pb2 as S

from tests.integration.helpers import gid, step, tm_stub, without_details
from tests.integration.participant import Participant
from tm_service import TmServer
from tm_service.domain import (
    ActiveJob,
    Endpoint,
    Mode,
    NewTransaction,
    RetryPolicy,
    StepSpec,
    StepStatus,
    TxOptions,
    TxStatus,
)
from tm_service.errors import LeaseLost
from tm_service.store import PostgresStore


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _commits(database_url: str) -> int:
    """Committed transactions of the database so far (read from another database)."""
    base, _, name = database_url.rpartition("/")
    conn = await asyncpg.connect(_plain(f"{base}/postgres"))
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(0)  # the TM's backends flush their counters on their own
        n: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
        )
        return n
    finally:
        await conn.close()


async def test_concurrent_jobs_share_commits_and_answer_as_stored(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    jobs = 48
    steps = [step(participant.target, f"/gc.v1.S/Do{i}", bytes([i])) for i in range(3)]
    gids = [gid() for _ in range(jobs)]
    async with tm_stub(tm.target) as stub:
        await stub.Submit(S.SubmitRequest(gid=gid(), steps=steps, wait_result=True))  # warm up
        before = await _commits(database_url)
        answers = await asyncio.gather(
            *(stub.Submit(S.SubmitRequest(gid=g, steps=steps, wait_result=True)) for g in gids)
        )
        # Backends report their statistics at most once a second.
        await asyncio.sleep(1.2)
        after = await _commits(database_url)
        stored = [
            (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction for g in gids
        ]
    assert all(a.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED for a in answers)
    # Without group commit: one per new job plus one per step = 4 per job.
    assert after - before < jobs * 2, (after - before, jobs)
    for answer, tx in zip(answers, stored, strict=True):
        # The in-memory answer is exactly what is stored (GetTransaction adds the details).
        assert answer.transaction == without_details(tx)
    for g in gids:
        calls = [c.method for c in participant.calls if c.metadata["stepping-gid"] == g]
        assert calls == [f"/gc.v1.S/Do{i}" for i in range(3)]


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore.from_url(database_url, pool_size=2)
    try:
        yield s
    finally:
        await s.close()


def _new(n_steps: int = 2) -> NewTransaction:
    policy = RetryPolicy(0.1, 2.0, 1.0, 0)
    specs = tuple(
        StepSpec(i, f"s{i}", Endpoint("127.0.0.1:1", "/a.A/B"), None, b"p", {}, policy, 1.0)
        for i in range(n_steps)
    )
    options = TxOptions(Mode.MESSAGE, 1.0, 1.0, None, concurrent=True)
    return NewTransaction(gid(), specs, options, None, "", b"fp")


async def _submitted(store: PostgresStore) -> ActiveJob:
    made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="me", lease=30)
    assert made is not None
    return made[0]


async def test_a_lost_lease_fails_only_that_write(store: PostgresStore, database_url: str) -> None:
    kept, lost = await _submitted(store), await _submitted(store)
    conn = await asyncpg.connect(_plain(database_url))
    try:
        await conn.execute(  # another replica took the job over
            "UPDATE stepping_transactions SET lease_token = lease_token + 1 WHERE gid = $1",
            lost.gid,
        )
        results = await asyncio.gather(
            *(
                store.step_done(
                    j, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"r", lease=30
                )
                for j in (kept, lost)
            ),
            return_exceptions=True,
        )
        assert not isinstance(results[0], BaseException)
        assert isinstance(results[1], LeaseLost)
        rows = await conn.fetch(
            "SELECT gid, status, result FROM stepping_steps WHERE idx = 0 ORDER BY gid"
        )
    finally:
        await conn.close()
    by_gid = {r["gid"]: (r["status"], r["result"]) for r in rows}
    assert by_gid[kept.gid] == (int(StepStatus.SUCCEEDED), b"r")
    assert by_gid[lost.gid] == (int(StepStatus.PENDING), None)  # fenced: nothing written


async def test_a_bad_write_does_not_fail_the_others(
    store: PostgresStore, database_url: str
) -> None:
    good, bad = await _submitted(store), await _submitted(store)

    async def fail(job: ActiveJob, error: str) -> None:
        await store.step_attempt_failed(
            job, 0, attempts=1, error=error, delay=1.0, keep_lease=True, lease=30
        )

    results = await asyncio.gather(
        fail(good, "UNAVAILABLE: down"), fail(bad, "bad \x00 text"), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], asyncpg.PostgresError)  # Postgres text has no NUL
    conn = await asyncpg.connect(_plain(database_url))
    try:
        rows = await conn.fetch("SELECT gid, last_error FROM stepping_steps WHERE idx = 0")
        errors = {row["gid"]: row["last_error"] for row in rows}
    finally:
        await conn.close()
    assert errors == {good.gid: "UNAVAILABLE: down", bad.gid: ""}


async def test_writes_of_one_job_in_one_burst_all_apply(store: PostgresStore) -> None:
    """Concurrent steps of one job finishing together: no write is lost or reordered."""
    job = await _submitted(store)
    await asyncio.gather(
        *(
            store.step_done(
                job, i, status=StepStatus.SUCCEEDED, attempts=1, result=bytes([i]), lease=30
            )
            for i in range(2)
        )
    )
    written = await store.set_status(job, TxStatus.SUCCEEDED, lease=30)
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert [(s.status, s.result) for s in tx.steps] == [
        (StepStatus.SUCCEEDED, b"\x00"),
        (StepStatus.SUCCEEDED, b"\x01"),
    ]
    assert tx.status is TxStatus.SUCCEEDED
    assert tx.finish_time == written.finish_time == job.finish_time
    assert tx.update_time == job.update_time
    assert job.create_time == tx.create_time
    assert tx.finish_time is not None and tx.finish_time - tx.create_time < timedelta(minutes=1)


@pytest.mark.parametrize("status", [TxStatus.PREPARED, TxStatus.SUBMITTED])
async def test_a_taken_gid_inserts_nothing(store: PostgresStore, status: TxStatus) -> None:
    new = _new()
    first, second = await asyncio.gather(
        store.insert(new, status=status, owner="me", lease=30),
        store.insert(new, status=status, owner="me", lease=30),
    )
    assert (first is None) != (second is None)  # exactly one stored it
    stored = await store.get(new.gid)
    assert stored is not None and len(stored.transaction.steps) == 2
