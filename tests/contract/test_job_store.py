"""The JobStore contract: the same behaviour from the Postgres store and its in-memory twin.

Each test runs twice (``sut`` is parametrized). What the processor and the use cases
rely on is pinned here once: status guards, lease-token fencing, due times, ordering.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from tests.contract.conftest import StoreUnderTest
from tm_service.domain import (
    HISTORY_LIMIT,
    ActiveJob,
    Attempt,
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
from tm_service.store import JobStore

LEASE = 30.0


def _new(
    n_steps: int = 2,
    *,
    mode: Mode = Mode.MESSAGE,
    deadline: float | None = None,
    check_prepared_after: float = 10.0,
    fingerprint: bytes = b"fp",
) -> NewTransaction:
    policy = RetryPolicy(0.1, 2.0, 1.0, 0)
    comp = Endpoint("127.0.0.1:1", "/a.A/Undo") if mode is Mode.SAGA else None
    specs = tuple(
        StepSpec(
            i, f"s{i}", Endpoint("127.0.0.1:1", f"/a.A/S{i}"), comp, b"p%d" % i, {}, policy, 1.0
        )
        for i in range(n_steps)
    )
    options = TxOptions(mode, 1.0, check_prepared_after, deadline, concurrent=False)
    qp = Endpoint("127.0.0.1:2", "/q.Q/QueryPrepared")
    return NewTransaction(uuid.uuid4().hex, specs, options, qp, "db", fingerprint)


async def test_insert_stores_a_new_job_once(sut: StoreUnderTest) -> None:
    store = sut.store
    new = _new(fingerprint=b"one")
    made = await store.insert(new, status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert made is not None
    job, tx = made
    assert job.lease_token == 1 and job.status is TxStatus.SUBMITTED
    assert [s.status for s in tx.steps] == [StepStatus.PENDING] * 2
    assert tx.create_time == tx.update_time and tx.finish_time is None
    stored = await store.get(new.gid)
    assert stored is not None
    assert stored.fingerprint == b"one"
    assert stored.transaction == tx
    again = await store.insert(_new_same(new), status=TxStatus.SUBMITTED, owner="r2", lease=LEASE)
    assert again is None
    after = await store.get(new.gid)
    assert after is not None and after.fingerprint == b"one"


async def _held(store: JobStore, new: NewTransaction, *, lease: float = LEASE) -> ActiveJob:
    """``new`` stored SUBMITTED and held by replica r1 (as a Submit there leaves it)."""
    made = await store.insert(new, status=TxStatus.SUBMITTED, owner="r1", lease=lease)
    assert made is not None
    return made[0]


def _new_same(new: NewTransaction) -> NewTransaction:
    return NewTransaction(new.gid, new.steps[:1], new.options, None, "", b"other")


async def test_a_new_job_carries_what_the_processor_needs(sut: StoreUnderTest) -> None:
    new = _new(mode=Mode.SAGA, deadline=60.0)
    new = NewTransaction(
        new.gid, new.steps, new.options, new.query_prepared, "db", b"f", {"traceparent": "00-x"}
    )
    made = await sut.store.insert(new, status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert made is not None
    job, _ = made
    assert job.specs == new.steps
    assert job.options == new.options
    assert job.query_prepared == new.query_prepared
    assert job.trace_context == {"traceparent": "00-x"}
    assert job.deadline_at is not None and job.create_time is not None
    assert abs((job.deadline_at - job.create_time).total_seconds() - 60.0) < 0.01
    claimed_later = await sut.store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert claimed_later == []  # leased to r1


async def test_prepared_jobs_wait_for_the_back_check_time(sut: StoreUnderTest) -> None:
    store = sut.store
    new = _new(check_prepared_after=1.0)
    made = await store.insert(new, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    assert made is not None
    assert made[0].lease_token == 0 and made[1].status is TxStatus.PREPARED
    assert await store.claim_due(owner="r1", lease=LEASE, limit=10) == []
    await sut.advance(1.1)
    claimed = await store.claim_due(owner="r1", lease=LEASE, limit=10)
    assert [j.gid for j in claimed] == [new.gid]
    assert claimed[0].lease_token == 1 and claimed[0].status is TxStatus.PREPARED
    assert claimed[0].specs == new.steps


async def test_abort_only_moves_a_prepared_job(sut: StoreUnderTest) -> None:
    store = sut.store
    prepared = _new()
    await store.insert(prepared, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    assert await store.abort_prepared(prepared.gid, "client said so") is True
    assert await store.abort_prepared(prepared.gid, "again") is False
    stored = await store.get(prepared.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.ABORTED and tx.error == "client said so"
    assert tx.finish_time is not None
    running = _new()
    await store.insert(running, status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert await store.abort_prepared(running.gid, "no") is False
    assert await store.abort_prepared("no-such-gid", "no") is False
    # An aborted job is never due.
    await sut.advance(0.05)
    assert prepared.gid not in [j.gid for j in await store.claim_due(owner="x", lease=1, limit=9)]


async def test_submit_prepared_leases_the_job_once(sut: StoreUnderTest) -> None:
    store = sut.store
    new = _new(deadline=30.0)
    await store.insert(new, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    moved = await store.submit_prepared(new.gid, owner="r1", lease=LEASE)
    assert moved is not None
    job, tx = moved
    assert job.status is TxStatus.SUBMITTED and tx.status is TxStatus.SUBMITTED
    assert job.lease_token == 1
    assert job.deadline_at is not None
    assert await store.submit_prepared(new.gid, owner="r2", lease=LEASE) is None
    assert await store.submit_prepared("no-such-gid", owner="r2", lease=LEASE) is None
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []


async def test_a_claim_fences_out_the_previous_holder(sut: StoreUnderTest) -> None:
    store = sut.store
    new = _new()
    made = await store.insert(new, status=TxStatus.SUBMITTED, owner="r1", lease=0.2)
    assert made is not None
    old, _ = made
    await sut.advance(0.3)  # r1's lease lapsed
    claimed = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert [j.gid for j in claimed] == [new.gid]
    assert claimed[0].lease_token == old.lease_token + 1
    with pytest.raises(LeaseLost):
        await store.step_done(
            old, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"r1", lease=LEASE
        )
    with pytest.raises(LeaseLost):
        await store.renew(old, LEASE)
    stored = await store.get(new.gid)
    assert stored is not None
    assert stored.transaction.steps[0].status is StepStatus.PENDING  # r1 changed nothing
    # The new holder writes fine.
    await store.step_done(
        claimed[0], 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"r2", lease=LEASE
    )
    stored = await store.get(new.gid)
    assert stored is not None and stored.transaction.steps[0].result == b"r2"


async def test_a_held_lease_is_not_claimed_and_a_renewal_keeps_it(sut: StoreUnderTest) -> None:
    store = sut.store
    made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=0.3)
    assert made is not None
    job, _ = made
    await sut.advance(0.1)
    await store.renew(job, 1.0)
    await sut.advance(0.3)  # past the first lease, within the renewed one
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []
    await sut.advance(0.9)
    assert len(await store.claim_due(owner="r2", lease=LEASE, limit=10)) == 1


async def test_release_hands_the_job_back_at_once(sut: StoreUnderTest) -> None:
    store = sut.store
    made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert made is not None
    await store.release(made[0])
    await sut.advance(0.05)
    claimed = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert [j.gid for j in claimed] == [made[0].gid]


async def test_a_retry_handed_to_the_store_is_due_after_its_delay(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    await store.step_attempt_failed(
        job, 0, attempts=1, error="UNAVAILABLE: down", delay=1.0, keep_lease=False, lease=LEASE
    )
    stored = await store.get(job.gid)
    assert stored is not None
    step = stored.transaction.steps[0]
    assert (step.status, step.attempts, step.last_error) == (
        StepStatus.PENDING,
        1,
        "UNAVAILABLE: down",
    )
    assert step.next_attempt_time is not None
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []
    await sut.advance(1.1)
    claimed = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert len(claimed) == 1
    assert claimed[0].states[0].attempts == 1 and claimed[0].states[0].last_error


async def test_an_inline_retry_keeps_the_lease_over_the_delay(sut: StoreUnderTest) -> None:
    store = sut.store
    made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=0.2)
    assert made is not None
    job, _ = made
    await store.step_attempt_failed(
        job, 0, attempts=1, error="UNAVAILABLE", delay=0.5, keep_lease=True, lease=1.0
    )
    await sut.advance(0.6)  # due again, but still leased (delay + lease)
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []


async def test_the_last_step_finishes_the_job_in_the_same_write(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    first = await store.step_done(
        job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"one", lease=LEASE
    )
    assert first.finish_time is None and job.update_time == first.update_time
    last = await store.step_done(
        job,
        1,
        status=StepStatus.SUCCEEDED,
        attempts=2,
        result=b"two",
        lease=LEASE,
        finish=TxStatus.SUCCEEDED,
    )
    assert last.finish_time is not None and last.update_time >= first.update_time
    assert job.finish_time == last.finish_time
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.SUCCEEDED and tx.finish_time == last.finish_time
    assert [(s.status, s.attempts, s.result) for s in tx.steps] == [
        (StepStatus.SUCCEEDED, 1, b"one"),
        (StepStatus.SUCCEEDED, 2, b"two"),
    ]
    await sut.advance(0.05)
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []  # final: never due


async def test_a_saga_step_failure_starts_compensating_at_once(sut: StoreUnderTest) -> None:
    store = sut.store
    made = await store.insert(
        _new(mode=Mode.SAGA), status=TxStatus.SUBMITTED, owner="r1", lease=0.2
    )
    assert made is not None
    job, _ = made
    await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"", lease=0.2)
    written = await store.step_failed(
        job,
        1,
        attempts=1,
        error="ABORTED: no money",
        job_status=TxStatus.COMPENSATING,
        job_error="step 1 (s1) failed: ABORTED: no money",
        lease=0.2,
    )
    assert written.finish_time is None
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.COMPENSATING and tx.error.startswith("step 1 (s1) failed")
    assert tx.steps[1].status is StepStatus.FAILED and tx.steps[1].last_error == "ABORTED: no money"
    await sut.advance(0.3)  # a crash here: the compensation is due at once once the lease lapses
    claimed = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert [j.status for j in claimed] == [TxStatus.COMPENSATING]
    await store.step_done(
        claimed[0], 0, status=StepStatus.COMPENSATED, attempts=1, result=None, lease=LEASE
    )
    await store.set_status(claimed[0], TxStatus.FAILED, lease=LEASE)
    stored = await store.get(job.gid)
    assert stored is not None
    assert stored.transaction.status is TxStatus.FAILED
    assert stored.transaction.steps[0].status is StepStatus.COMPENSATED
    assert stored.transaction.steps[0].result == b""  # a compensation keeps the action's result
    assert stored.transaction.finish_time is not None


async def test_a_message_step_failure_is_final(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    written = await store.step_failed(
        job,
        0,
        attempts=3,
        error="gave up",
        job_status=TxStatus.FAILED,
        job_error="step 0 (s0) failed: gave up",
        lease=LEASE,
    )
    assert written.finish_time is not None
    # Recording only the step (another failure decides the job) leaves the job alone.
    other = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert other is not None
    await store.step_failed(
        other[0], 1, attempts=1, error="x", job_status=None, job_error="", lease=LEASE
    )
    stored = await store.get(other[0].gid)
    assert stored is not None
    assert stored.transaction.status is TxStatus.SUBMITTED and stored.transaction.error == ""
    assert stored.transaction.steps[1].status is StepStatus.FAILED


async def test_the_back_check_outcomes(sut: StoreUnderTest) -> None:
    store = sut.store
    new = _new(deadline=5.0, check_prepared_after=0.0)
    await store.insert(new, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    await sut.advance(0.05)
    (job,) = await store.claim_due(owner="r1", lease=LEASE, limit=10)
    assert job.query_attempts == 0 and job.deadline_at is None
    await store.defer_prepared(job, delay=1.0, error="QueryPrepared: UNAVAILABLE")
    stored = await store.get(new.gid)
    assert stored is not None
    assert stored.transaction.status is TxStatus.PREPARED
    assert stored.transaction.error == "QueryPrepared: UNAVAILABLE"
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []  # not yet
    await sut.advance(1.1)
    (again,) = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert again.query_attempts == 1
    # COMMITTED: submitted now, its deadline counted from here.
    await store.set_status(again, TxStatus.SUBMITTED, error="", lease=LEASE)
    stored = await store.get(new.gid)
    assert stored is not None
    assert stored.transaction.status is TxStatus.SUBMITTED and stored.transaction.error == ""
    await store.release(again)
    await sut.advance(0.05)
    (running,) = await store.claim_due(owner="r3", lease=LEASE, limit=10)
    assert running.status is TxStatus.SUBMITTED and running.deadline_at is not None
    # ROLLED_BACK on another job: aborted, final.
    other = _new(check_prepared_after=0.0)
    await store.insert(other, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    await sut.advance(0.05)
    (o,) = await store.claim_due(owner="r1", lease=LEASE, limit=10)
    w = await store.set_status(o, TxStatus.ABORTED, error="rolled back", lease=LEASE)
    assert w.finish_time is not None
    stored = await store.get(other.gid)
    assert stored is not None and stored.transaction.status is TxStatus.ABORTED


async def test_claims_take_the_oldest_due_first_up_to_the_limit(sut: StoreUnderTest) -> None:
    store = sut.store
    gids = []
    for _ in range(4):
        made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
        assert made is not None
        await store.release(made[0])
        gids.append(made[0].gid)
        await sut.advance(0.01)
    first = await store.claim_due(owner="r2", lease=LEASE, limit=3)
    assert {j.gid for j in first} == set(gids[:3])  # which ones; not the order returned
    second = await store.claim_due(owner="r3", lease=LEASE, limit=3)
    assert [j.gid for j in second] == gids[3:]
    count, _ = await store.due_stats()
    assert count == 0


async def test_due_stats_count_what_nobody_holds(sut: StoreUnderTest) -> None:
    store = sut.store
    assert await store.due_stats() == (0, 0.0)
    for _ in range(2):
        made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
        assert made is not None
        await store.release(made[0])
    await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)  # held
    await sut.advance(0.2)
    count, age = await store.due_stats()
    assert count == 2
    assert 0.15 <= age < 5.0


async def test_lists_are_newest_first_filtered_and_paged(sut: StoreUnderTest) -> None:
    store = sut.store
    gids = []
    for i in range(5):
        status = TxStatus.PREPARED if i % 2 else TxStatus.SUBMITTED
        made = await store.insert(_new(), status=status, owner="r1", lease=LEASE)
        assert made is not None
        gids.append(made[0].gid)
        await sut.advance(0.01)
    job = await store.get(gids[0])
    assert job is not None
    page = await store.list_transactions(statuses=[], limit=3, before=None)
    assert [t.gid for t in page] == gids[::-1][:3]
    last = page[-1]
    rest = await store.list_transactions(statuses=[], limit=3, before=(last.create_time, last.gid))
    assert [t.gid for t in rest] == gids[::-1][3:]
    prepared = await store.list_transactions(statuses=[TxStatus.PREPARED], limit=10, before=None)
    assert [t.gid for t in prepared] == [gids[3], gids[1]]


async def test_a_job_keeps_its_owner_and_lists_filter_by_it(sut: StoreUnderTest) -> None:
    store = sut.store
    gids: dict[str | None, list[str]] = {"orders": [], "billing": [], None: []}
    for owner in ["orders", "billing", None, "orders"]:
        new = dataclasses.replace(_new(), owner=owner)
        status = TxStatus.SUBMITTED if owner == "billing" else TxStatus.PREPARED
        made = await store.insert(new, status=status, owner="r1", lease=LEASE)
        assert made is not None
        job, tx = made
        assert job.owner == owner and tx.owner == owner
        assert job.snapshot().owner == owner
        gids[owner].append(new.gid)
        await sut.advance(0.01)
    stored = await store.get(gids["orders"][0])
    assert stored is not None and stored.transaction.owner == "orders"
    # Prepared ones wait for their back-check, the submitted one is leased to r1.
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []
    mine = await store.list_transactions(statuses=[], limit=10, before=None, owner="orders")
    assert [t.gid for t in mine] == gids["orders"][::-1]
    assert all(t.owner == "orders" for t in mine)
    first = await store.list_transactions(statuses=[], limit=1, before=None, owner="orders")
    rest = await store.list_transactions(
        statuses=[], limit=10, before=(first[0].create_time, first[0].gid), owner="orders"
    )
    assert [t.gid for t in first + rest] == gids["orders"][::-1]
    prepared_billing = await store.list_transactions(
        statuses=[TxStatus.PREPARED], limit=10, before=None, owner="billing"
    )
    assert prepared_billing == []
    everyone = await store.list_transactions(statuses=[], limit=10, before=None)
    assert {t.owner for t in everyone} == {"orders", "billing", None}


async def test_lists_leave_results_out_and_get_keeps_them(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"r", lease=1)
    (listed,) = await store.list_transactions(statuses=[], limit=10, before=None)
    assert listed.steps[0].result is None and listed.steps[0].status is StepStatus.SUCCEEDED
    stored = await store.get(job.gid)
    assert stored is not None and stored.transaction.steps[0].result == b"r"


async def test_reads_are_copies(sut: StoreUnderTest) -> None:
    store = sut.store
    made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert made is not None
    job, tx = made
    tx.steps[0].status = StepStatus.FAILED
    job.states[0].attempts = 99
    stored = await store.get(job.gid)
    assert stored is not None
    assert stored.transaction.steps[0].status is StepStatus.PENDING
    assert stored.transaction.steps[0].attempts == 0


async def test_reload_gives_the_holder_the_job_as_stored_with_a_new_token(
    sut: StoreUnderTest,
) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=2, result=b"r", lease=1)
    fresh = await store.reload(job, owner="r1", lease=LEASE)
    assert fresh is not None
    assert fresh.lease_token == job.lease_token + 1
    assert [(s.status, s.attempts) for s in fresh.states] == [
        (StepStatus.SUCCEEDED, 2),
        (StepStatus.PENDING, 0),
    ]
    with pytest.raises(LeaseLost):
        await store.renew(job, LEASE)  # the old token is fenced off now
    await store.renew(fresh, LEASE)
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []  # still held


async def test_reload_after_a_takeover_returns_nothing(sut: StoreUnderTest) -> None:
    store = sut.store
    made = await store.insert(_new(), status=TxStatus.SUBMITTED, owner="r1", lease=0.2)
    assert made is not None
    await sut.advance(0.3)
    (theirs,) = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert await store.reload(made[0], owner="r1", lease=LEASE) is None
    await store.renew(theirs, LEASE)  # r2 is unaffected


async def test_reload_of_a_finished_job_holds_no_lease(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(1), lease=LEASE)
    await store.step_done(
        job,
        0,
        status=StepStatus.SUCCEEDED,
        attempts=1,
        result=b"",
        lease=LEASE,
        finish=TxStatus.SUCCEEDED,
    )
    fresh = await store.reload(job, owner="r1", lease=LEASE)
    assert fresh is not None and fresh.status is TxStatus.SUCCEEDED
    assert await store.due_stats() == (0, 0.0)


async def test_ping_answers(sut: StoreUnderTest) -> None:
    await sut.store.ping()


# -- job control (issue 13) -------------------------------------------------------------
async def test_cancel_moves_each_unfinished_status_and_fences_the_holder(
    sut: StoreUnderTest,
) -> None:
    store = sut.store
    prepared = _new()
    assert await store.insert(prepared, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    assert await store.cancel(prepared.gid, "no longer wanted")
    stored = await store.get(prepared.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.ABORTED and tx.error == "no longer wanted"
    assert tx.cancel_reason == "no longer wanted" and tx.finish_time is not None

    job = await _held(store, _new(), lease=LEASE)
    assert await store.cancel(job.gid, "stuck")
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.FAILED and tx.error == "cancelled: stuck"
    assert tx.cancel_reason == "stuck" and tx.finish_time is not None
    with pytest.raises(LeaseLost):  # the replica running it can go on with nothing more,
        await store.step_done(
            job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"r0", lease=LEASE
        )
    with pytest.raises(LeaseLost):  # but the result of its call in flight was recorded, once
        await store.step_done(
            job, 1, status=StepStatus.SUCCEEDED, attempts=1, result=b"r1", lease=LEASE
        )
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.FAILED and tx.error == "cancelled: stuck"
    assert [(s.status, s.result) for s in tx.steps] == [
        (StepStatus.SUCCEEDED, b"r0"),
        (StepStatus.PENDING, None),
    ]
    assert not await store.cancel(job.gid, "again")  # final: unchanged
    again = await store.get(job.gid)
    assert again is not None and again.transaction.cancel_reason == "stuck"
    assert not await store.cancel("no-such-gid", "x")


async def test_cancel_of_a_saga_compensates_on_any_replica(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(mode=Mode.SAGA), lease=LEASE)
    await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"", lease=LEASE)
    assert await store.cancel(job.gid, "customer left")
    stored = await store.get(job.gid)
    assert stored is not None
    assert stored.transaction.status is TxStatus.COMPENSATING
    assert stored.transaction.finish_time is None
    # r1 holds it and may have a call in flight: its lease is kept until it reports.
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []
    assert await store.lease_changes([(job.gid, job.lease_token)]) == {job.gid: True}
    assert await store.release_cancelled(job, in_flight=False)
    assert not await store.release_cancelled(job, in_flight=False)  # once
    claimed = await store.claim_due(owner="r2", lease=LEASE, limit=10)  # released: due now
    assert [j.gid for j in claimed] == [job.gid]
    assert claimed[0].status is TxStatus.COMPENSATING
    assert not claimed[0].cancel_in_flight  # r1 said nothing was in flight
    assert not await store.cancel(job.gid, "again")  # compensating: left alone
    # A take-over is not a cancel: r1's token changed, and not by a Cancel of it.
    assert await store.lease_changes([(job.gid, job.lease_token)]) == {job.gid: False}
    assert await store.lease_changes([(job.gid, claimed[0].lease_token)]) == {}
    assert await store.lease_changes([("no-such-gid", 1)]) == {"no-such-gid": False}


async def test_a_cancelled_saga_whose_holder_never_reports_compensates_its_running_step(
    sut: StoreUnderTest,
) -> None:
    store = sut.store
    job = await _held(store, _new(mode=Mode.SAGA), lease=1)
    assert await store.cancel(job.gid, "operator")
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []
    await sut.advance(1.2)  # r1 died: its lease lapses
    (claimed,) = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert claimed.cancel_in_flight  # its call's effect is unknown
    with pytest.raises(LeaseLost):  # r1's late write is refused, and not recorded
        await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"", lease=1)
    stored = await store.get(job.gid)
    assert stored is not None and stored.transaction.steps[0].status is StepStatus.PENDING


async def test_a_cancel_of_an_unheld_job_keeps_no_token(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(mode=Mode.SAGA), lease=LEASE)
    await store.step_attempt_failed(
        job, 0, attempts=1, error="down", delay=30.0, keep_lease=False, lease=LEASE
    )  # waits in the database: nobody holds it
    assert await store.cancel(job.gid, "operator")
    (claimed,) = await store.claim_due(owner="r2", lease=LEASE, limit=10)
    assert not claimed.cancel_in_flight
    assert not await store.release_cancelled(job, in_flight=True)


async def test_resume_after_a_cancel_fences_the_late_result(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    assert await store.cancel(job.gid, "operator")
    assert await store.resume(job.gid, owner="r2", lease=LEASE) is not None
    with pytest.raises(LeaseLost):  # resumed meanwhile: the old call's result is not taken
        await store.step_done(
            job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"", lease=LEASE
        )
    stored = await store.get(job.gid)
    assert stored is not None
    assert stored.transaction.status is TxStatus.SUBMITTED
    assert stored.transaction.steps[0].status is StepStatus.PENDING


async def test_resume_reruns_only_what_did_not_succeed(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(3), lease=LEASE)
    assert await store.resume(job.gid, owner="r1", lease=LEASE) is None  # not FAILED
    await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=2, result=b"r", lease=LEASE)
    await store.step_failed(
        job,
        1,
        attempts=5,
        error="gave up",
        job_status=TxStatus.FAILED,
        job_error="step 1 (s1) failed: gave up",
        lease=LEASE,
    )
    resumed = await store.resume(job.gid, owner="r2", lease=LEASE)
    assert resumed is not None
    active, tx = resumed
    assert tx.status is TxStatus.SUBMITTED and tx.error == "" and tx.finish_time is None
    assert [(s.status, s.attempts) for s in tx.steps] == [
        (StepStatus.SUCCEEDED, 2),
        (StepStatus.PENDING, 0),
        (StepStatus.PENDING, 0),
    ]
    assert tx.steps[1].last_error == "gave up"  # kept until the step succeeds
    assert active.lease_token > job.lease_token
    with pytest.raises(LeaseLost):
        await store.renew(job, LEASE)
    await store.renew(active, LEASE)  # the resumed job is leased to r2
    assert await store.resume(job.gid, owner="r2", lease=LEASE) is None  # SUBMITTED now


async def test_a_compensated_saga_is_not_resumable(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(mode=Mode.SAGA), lease=LEASE)
    await store.step_done(
        job, 0, status=StepStatus.COMPENSATED, attempts=1, result=None, lease=LEASE
    )
    await store.set_status(job, TxStatus.FAILED, lease=LEASE)
    assert await store.resume(job.gid, owner="r1", lease=LEASE) is None
    assert await store.resume("no-such-gid", owner="r1", lease=LEASE) is None


# -- attempt history (issue 13) -------------------------------------------------------
def _call(n: int, code: int = 14, op: str = "action", error: str = "down") -> Attempt:
    return Attempt(n, op, datetime(2026, 12, 1, 12, 0, n % 60, tzinfo=UTC), 0.25, code, error)


async def test_each_call_is_appended_to_its_step_history_newest_kept(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _held(store, _new(), lease=LEASE)
    for n in range(1, HISTORY_LIMIT + 3):
        await store.step_attempt_failed(
            job, 0, attempts=n, error="down", delay=0.0, keep_lease=True, lease=LEASE,
            call=_call(n),
        )  # fmt: skip
    done = _call(HISTORY_LIMIT + 3, code=0, error="")
    await store.step_done(
        job, 0, status=StepStatus.SUCCEEDED, attempts=HISTORY_LIMIT + 3, result=b"", lease=LEASE,
        call=done,
    )  # fmt: skip
    stored = await store.get(job.gid)
    assert stored is not None
    history = stored.transaction.steps[0].history
    assert len(history) == HISTORY_LIMIT  # the newest ones
    assert [a.number for a in history] == list(range(4, HISTORY_LIMIT + 4))
    assert history[-1] == done
    assert history[0] == _call(4)
    assert stored.transaction.steps[1].history == ()
    # Lists carry no history (light rows).
    [listed] = [t for t in await store.list_transactions(statuses=(), limit=5, before=None)
                if t.gid == job.gid]  # fmt: skip
    assert listed.steps[0].history == ()


async def test_back_check_calls_are_kept_on_the_job(sut: StoreUnderTest) -> None:
    store = sut.store
    new = _new(check_prepared_after=0.0)
    assert await store.insert(new, status=TxStatus.PREPARED, owner=None, lease=0) is not None
    [job] = await store.claim_due(owner="r1", lease=LEASE, limit=10)
    first = _call(1, code=14, op="query_prepared", error="QueryPrepared: down")
    await store.defer_prepared(job, delay=0.0, error="QueryPrepared: down", check=first)
    [job] = await store.claim_due(owner="r1", lease=LEASE, limit=10)
    second = _call(2, code=0, op="query_prepared", error="")
    await store.set_status(job, TxStatus.SUBMITTED, error="", lease=LEASE, check=second)
    stored = await store.get(new.gid)
    assert stored is not None
    assert stored.transaction.query_prepared_history == (first, second)


# -- the wire dialect (issue 17) ------------------------------------------------------
async def test_a_job_keeps_its_protocol_from_insert_to_claim(sut: StoreUnderTest) -> None:
    store = sut.store
    dtm_job = dataclasses.replace(_new(check_prepared_after=1.0), protocol="dtm")
    plain = _new(check_prepared_after=1.0)
    made = await store.insert(dtm_job, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    assert made is not None and made[0].protocol == "dtm"
    await store.insert(plain, status=TxStatus.PREPARED, owner=None, lease=LEASE)
    await sut.advance(1.1)
    claimed = {j.gid: j for j in await store.claim_due(owner="r1", lease=LEASE, limit=10)}
    assert claimed[dtm_job.gid].protocol == "dtm"
    assert claimed[plain.gid].protocol == ""
    reloaded = await store.reload(claimed[dtm_job.gid], owner="r1", lease=LEASE)
    assert reloaded is not None and reloaded.protocol == "dtm"


# -- a parked compensation (issue 13) ----------------------------------------------------
async def _park_one(sut: StoreUnderTest) -> ActiveJob:
    store = sut.store
    job = await _held(store, _new(mode=Mode.SAGA), lease=LEASE)
    await store.step_done(job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=b"", lease=LEASE)
    await store.step_failed(
        job, 1, attempts=1, error="ABORTED: no", job_status=TxStatus.COMPENSATING,
        job_error="step 1 failed", lease=LEASE,
    )  # fmt: skip
    call = Attempt(1, "compensate", datetime(2026, 12, 1, tzinfo=UTC), 0.1, 12, "UNIMPLEMENTED")
    await store.park(job, 0, attempts=2, error="UNIMPLEMENTED", reason="undo missing", call=call)
    return job


async def test_a_parked_job_waits_then_cancel_fails_it(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _park_one(sut)
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.COMPENSATING and tx.needs_attention == "undo missing"
    assert tx.steps[0].history[-1].op == "compensate"
    await sut.advance(0.5)
    assert await store.claim_due(owner="r2", lease=LEASE, limit=10) == []  # not due, not leased
    assert await store.cancel(job.gid, "by hand")
    stored = await store.get(job.gid)
    assert stored is not None
    tx = stored.transaction
    assert tx.status is TxStatus.FAILED and tx.finish_time is not None
    assert tx.error == "cancelled: by hand (left undone: undo missing)"
    assert tx.needs_attention == ""


async def test_resume_makes_a_parked_job_run_here_again(sut: StoreUnderTest) -> None:
    store = sut.store
    job = await _park_one(sut)
    moved = await store.resume(job.gid, owner="r2", lease=LEASE)
    assert moved is not None
    active, tx = moved
    assert tx.status is TxStatus.COMPENSATING and tx.needs_attention == ""
    assert active.lease_token > job.lease_token
    with pytest.raises(LeaseLost):  # the old holder is fenced out
        await store.renew(job, LEASE)
    assert await store.resume(job.gid, owner="r2", lease=LEASE) is None  # not parked now
