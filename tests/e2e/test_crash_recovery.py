"""Real TM processes: SIGKILL mid-job, two replicas on one database, SIGTERM draining."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select
from stepping.tm.v1 import tm_pb2 as S

from tests.e2e.conftest import SpawnTm
from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub, wait_status
from tests.integration.participant import Participant
from tm_service.store import PostgresStore
from tm_service.store._schema import transactions

pytestmark = pytest.mark.e2e


async def test_sigkill_mid_job_then_restart_completes_in_order(
    spawn_tm: SpawnTm, database_url: str, participant: Participant
) -> None:
    method = "/e2e.v1.Steps/Do"
    participant.delays[method] = 0.25
    n = 6
    first = await spawn_tm(database_url)
    g = gid()
    async with tm_stub(first.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[
                    step(participant.target, method, bytes([i]), name=f"s{i}") for i in range(n)
                ],
            )
        )
        deadline = time.monotonic() + 10
        while len(participant.calls) < 3:  # step 2 is in flight
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    first.kill()
    killed_at = len(participant.calls)
    await asyncio.sleep(0.4)
    assert len(participant.calls) == killed_at  # nobody works on it while the lease holds

    second = await spawn_tm(database_url)
    async with tm_stub(second.target) as stub:
        tx = await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED, timeout=20)
    indexes = [int(c.metadata["stepping-step-index"]) for c in participant.calls]
    assert indexes == sorted(indexes), indexes  # order kept, never a step before its predecessor
    assert set(indexes) == set(range(n))  # no step skipped
    assert len(indexes) <= n + 1  # at most the in-flight step is delivered again
    assert [c.payload for c in participant.calls if c.metadata["stepping-step-index"] == "5"] == [
        bytes([5])
    ]
    assert all(s.status == S.STEP_STATUS_SUCCEEDED for s in tx.steps)


async def test_two_replicas_share_the_work_without_double_delivery(
    spawn_tm: SpawnTm, database_url: str, participant: Participant
) -> None:
    ship, mail = "/e2e.v1.Orders/Ship", "/e2e.v1.Mail/Send"
    participant.delays[ship] = 0.05
    participant.fail_first[ship] = 1  # every job's first attempt fails: a retry via the DB
    common: dict[str, Any] = {
        "sweep_batch_size": 2,
        "max_active_jobs": 4,
        "inline_retry_max_seconds": 0,
    }
    a = await spawn_tm(database_url, **common)
    b = await spawn_tm(database_url, **common)
    gids = [gid() for _ in range(24)]
    async with tm_stub(a.target) as stub_a, tm_stub(b.target) as stub_b:
        for i, g in enumerate(gids):
            await (stub_a if i % 2 else stub_b).Prepare(
                S.PrepareRequest(
                    gid=g,
                    steps=[
                        step(participant.target, ship, g.encode()),
                        step(participant.target, mail, g.encode()),
                    ],
                    query_prepared=S.Endpoint(target=participant.target),
                    options=S.TransactionOptions(
                        check_prepared_after=dur(0.2), retry_policy=fast_retry(0.1)
                    ),
                )
            )
        for g in gids:
            await wait_status(stub_a, g, S.TRANSACTION_STATUS_SUCCEEDED, timeout=30)
    assert participant.max_in_flight == 1  # never the same step on both replicas at once
    for g in gids:
        mine = [c for c in participant.calls if c.metadata["stepping-gid"] == g]
        assert [(c.method, c.metadata["stepping-attempt"]) for c in mine] == [
            (ship, "1"),
            (ship, "2"),
            (mail, "1"),
        ]
    assert len(participant.query_calls) == len(gids)  # each back-check asked once
    # Both replicas took part (neither may hold more than 4 jobs at once).
    assert "back-check: committed" in a.log_text()
    assert "back-check: committed" in b.log_text()


async def test_sigterm_lets_the_call_finish_and_hands_the_job_over(
    spawn_tm: SpawnTm, database_url: str, participant: Participant
) -> None:
    method = "/e2e.v1.Slow/Work"
    participant.delays[method] = 1.0
    first = await spawn_tm(database_url, lease_seconds=60, shutdown_grace_seconds=5)
    g = gid()
    async with tm_stub(first.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[
                    step(participant.target, method, b"1", timeout=dur(5)),
                    step(participant.target, method, b"2", timeout=dur(5)),
                ],
            )
        )
        while not participant.calls:
            await asyncio.sleep(0.01)
    first.terminate()
    assert await first.wait_exit(8) == 0
    # The in-flight call finished and was recorded; the lease was released, not left to lapse.
    store = PostgresStore.from_url(database_url, pool_size=1)
    try:
        async with store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(transactions.c.lease_owner, transactions.c.status).where(
                        transactions.c.gid == g
                    )
                )
            ).one()
    finally:
        await store.close()
    assert row.lease_owner is None
    started = time.monotonic()
    second = await spawn_tm(database_url, lease_seconds=60)
    async with tm_stub(second.target) as stub:
        tx = await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED, timeout=15)
    assert time.monotonic() - started < 10  # far below the 60 s lease
    assert [c.payload for c in participant.calls] == [b"1", b"2"]
    assert tx.steps[0].attempts == 1
