"""The processor's behaviours, driven in memory: a scripted transport, a fake clock and the
in-memory store. Every test runs in milliseconds; backoffs and leases are fake time."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from stepping.participant.v1 import participant_pb2 as P

from tests.fakes import Call, fail, ok
from tests.unit.processing.harness import QP, Core, method, new_job, policy, undo
from tm_service.domain import Mode, StepStatus, TxStatus

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


async def test_a_message_job_runs_its_steps_in_order_and_succeeds() -> None:
    core = Core()
    for i in range(3):
        core.transport.answer(method(i), ok(b"result-%d" % i))
    new = new_job(3, headers={"x-tenant": "acme"})
    tx = await core.run(new)
    assert tx.status is TxStatus.SUCCEEDED and tx.finish_time is not None
    assert [(s.status, s.attempts, s.result) for s in tx.steps] == [
        (StepStatus.SUCCEEDED, 1, b"result-%d" % i) for i in range(3)
    ]
    calls = core.transport.calls
    assert [c.endpoint.method for c in calls] == [method(0), method(1), method(2)]
    assert [c.payload for c in calls] == [b"payload-0", b"payload-1", b"payload-2"]
    assert calls[1].metadata == {
        "stepping-gid": new.gid,
        "stepping-step-index": "1",
        "stepping-step-name": "s1",
        "stepping-op": "action",
        "stepping-attempt": "1",
        "x-tenant": "acme",
    }
    assert all(c.timeout == 3.0 for c in calls)
    assert core.finals == [new.gid]
    assert core.clock.waited == []  # nothing waited


async def test_aborted_is_a_business_failure_never_retried() -> None:
    core = Core()
    core.transport.answer(method(1), fail(grpc.StatusCode.ABORTED, "insufficient funds"))
    tx = await core.run(new_job(3))
    assert tx.status is TxStatus.FAILED
    assert tx.error == "step 1 (s1) failed: ABORTED: insufficient funds"
    assert [s.status for s in tx.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.PENDING,  # never called
    ]
    assert tx.steps[1].attempts == 1
    assert core.methods_called() == [(method(0), "action"), (method(1), "action")]


async def test_other_errors_are_retried_with_exponential_backoff_capped() -> None:
    core = Core({"inline_retry_max_seconds": 100.0})
    core.transport.answer(method(0), *[fail(UNAVAILABLE, "down")] * 6, ok())
    tx = await core.run(new_job(1, retry=policy(initial=1.0, coefficient=2.0, maximum=10.0)))
    assert tx.status is TxStatus.SUCCEEDED
    assert tx.steps[0].attempts == 7
    assert core.clock.waited == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    attempts = [c.metadata["stepping-attempt"] for c in core.transport.calls]
    assert attempts == [str(n) for n in range(1, 8)]


async def test_a_step_gives_up_after_maximum_attempts() -> None:
    core = Core()
    core.transport.answer(method(0), fail(grpc.StatusCode.INTERNAL, "boom"))
    tx = await core.run(new_job(2, retry=policy(initial=0.5, attempts=3)))
    assert tx.status is TxStatus.FAILED
    assert tx.steps[0].attempts == 3
    assert tx.steps[0].last_error == "gave up after 3 attempts: INTERNAL: boom"
    assert len(core.transport.calls) == 3


async def test_not_ready_waits_the_base_interval_not_the_backoff() -> None:
    core = Core()
    core.transport.answer(
        method(0), *[fail(grpc.StatusCode.FAILED_PRECONDITION, "not yet")] * 3, ok()
    )
    tx = await core.run(new_job(1, retry=policy(initial=2.0, coefficient=3.0)))
    assert tx.status is TxStatus.SUCCEEDED
    assert core.clock.waited == [2.0, 2.0, 2.0]


async def test_a_retry_info_delay_from_the_participant_wins() -> None:
    core = Core()
    core.transport.answer(method(0), fail(UNAVAILABLE, "busy", retry_after=7.5), ok())
    tx = await core.run(new_job(1, retry=policy(initial=1.0)))
    assert tx.status is TxStatus.SUCCEEDED
    assert core.clock.waited == [7.5]


async def test_a_long_retry_is_handed_to_the_store_and_resumed_by_a_claim() -> None:
    core = Core({"inline_retry_max_seconds": 5.0})
    core.transport.answer(method(1), fail(UNAVAILABLE, "down", retry_after=60.0), ok(b"late"))
    new = new_job(3)
    tx = await core.run(new)
    # Paused: the lease is given back and the job is due in 60 s.
    assert tx.status is TxStatus.SUBMITTED
    assert tx.steps[1].attempts == 1 and tx.steps[1].last_error == "UNAVAILABLE: down"
    owner, _, expires = core.store.lease_of(new.gid)
    assert owner is None and expires is None
    assert core.clock.waited == []  # not waited in memory
    assert await core.claim("r2") == []  # not due yet
    core.clock.advance(60.5)
    (job,) = await core.claim("r2")
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED
    assert tx.steps[1].attempts == 2 and tx.steps[1].result == b"late"
    # Step 0 is never called again after the hand-off.
    assert [m for m, _ in core.methods_called()] == [method(0), method(1), method(1), method(2)]


async def test_a_saga_compensates_done_steps_in_reverse_order() -> None:
    core = Core()
    core.transport.answer(method(2), fail(grpc.StatusCode.ABORTED, "no"))
    core.transport.answer(undo(0), fail(UNAVAILABLE, "flaky"), ok(), op="compensate")
    tx = await core.run(new_job(4, mode=Mode.SAGA, retry=policy(initial=0.1, attempts=1)))
    assert tx.status is TxStatus.FAILED
    assert tx.error == "step 2 (s2) failed: ABORTED: no"
    assert core.methods_called() == [
        (method(0), "action"),
        (method(1), "action"),
        (method(2), "action"),
        (undo(2), "compensate"),  # the failed step was called: it may have done something
        (undo(1), "compensate"),
        (undo(0), "compensate"),
        (undo(0), "compensate"),  # compensations retry past maximum_attempts
    ]
    assert [s.status for s in tx.steps] == [
        StepStatus.COMPENSATED,
        StepStatus.COMPENSATED,
        StepStatus.COMPENSATED,
        StepStatus.PENDING,  # never called: nothing to undo
    ]
    assert tx.steps[0].result == b""  # the action's result is kept
    undo_meta = core.transport.calls_to(undo(1), "compensate")[0].metadata
    assert undo_meta["stepping-op"] == "compensate" and undo_meta["stepping-step-index"] == "1"


async def test_a_passed_deadline_fails_the_job_instead_of_retrying() -> None:
    core = Core({"inline_retry_max_seconds": 100.0})
    core.transport.answer(method(0), fail(UNAVAILABLE, "down"))
    tx = await core.run(new_job(2, deadline=30.0, retry=policy(initial=4.0, coefficient=2.0)))
    assert tx.status is TxStatus.FAILED
    assert tx.error == "step 0 (s0) failed: job deadline exceeded"
    # Attempts at 0, 4, 12 and 28 s; the next would start at 60 s, past the deadline.
    assert core.clock.waited == [4.0, 8.0, 16.0, 32.0]
    assert len(core.transport.calls) == 4


async def test_a_lost_lease_stops_the_processor_without_overwriting() -> None:
    core = Core({"lease_seconds": 10.0})
    new = new_job(3)
    claimed: list[int] = []

    async def steal(call: Call) -> None:
        # While step 1 is in flight r1's lease lapses and r2 claims the job.
        if call.step == 1 and not claimed:
            core.clock.advance(11.0)
            (theirs,) = await core.claim("r2")
            claimed.append(theirs.lease_token)

    core.transport.during = steal
    job = await core.submitted(new)
    await core.processor.run(job)
    assert claimed == [2]
    # r1's success of step 1 was fenced off and it called nothing after it.
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUBMITTED
    assert [s.status for s in tx.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.PENDING,
        StepStatus.PENDING,
    ]
    assert [m for m, _ in core.methods_called()] == [method(0), method(1)]
    owner, token, _ = core.store.lease_of(new.gid)
    assert (owner, token) == ("r2", 2)
    assert core.finals == []


async def test_a_lapsed_lease_nobody_took_over_still_writes() -> None:
    core = Core({"lease_seconds": 10.0})

    async def slow(call: Call) -> None:
        core.clock.advance(11.0)

    core.transport.during = slow
    tx = await core.run(new_job(2))
    assert tx.status is TxStatus.SUCCEEDED  # the token still matches: the work is kept


async def test_a_step_longer_than_what_is_left_of_the_lease_renews_it_first() -> None:
    core = Core({"lease_seconds": 30.0})
    new = new_job(2, timeout=3.0)
    job = await core.submitted(new)
    core.clock.advance(25.0)  # 5 s of lease left (minus the claim skew): not enough for 3 s + slack
    writes_before = core.store.writes(new.gid)
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED
    # one renewal, then one write per step
    assert core.store.writes(new.gid) - writes_before == 3


async def test_stopping_during_a_backoff_hands_the_job_back_at_once() -> None:
    core = Core()
    core.transport.answer(method(0), fail(UNAVAILABLE, "down"))

    def stop(call: Call) -> None:
        core.ctx.stopping.set()

    core.transport.during = stop
    new = new_job(1)
    tx = await core.run(new)
    assert tx.status is TxStatus.SUBMITTED
    assert len(core.transport.calls) == 1
    owner, _, expires = core.store.lease_of(new.gid)
    assert owner is None and expires is None  # released: another replica may continue now


async def test_concurrent_steps_all_run_and_one_failure_fails_the_job() -> None:
    core = Core()
    core.transport.answer(method(1), fail(grpc.StatusCode.ABORTED, "no"))
    tx = await core.run(new_job(3, concurrent=True))
    assert tx.status is TxStatus.FAILED
    assert sorted(m for m, _ in core.methods_called()) == [method(0), method(1), method(2)]
    assert [s.status for s in tx.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.SUCCEEDED,
    ]


async def test_a_recovered_job_whose_steps_all_succeeded_just_finishes() -> None:
    core = Core()
    new = new_job(2)
    job = await core.submitted(new)
    for i in range(2):
        await core.store.step_done(
            job, i, status=StepStatus.SUCCEEDED, attempts=1, result=b"", lease=30.0
        )
    await core.store.release(job)  # the replica died before finishing the job
    (again,) = await core.claim("r2")
    await core.processor.run(again)
    assert (await core.stored(new.gid)).status is TxStatus.SUCCEEDED
    assert core.transport.calls == []


# -- the back-check of prepared jobs ------------------------------------------------


def _outcome(value: int) -> bytes:
    return P.QueryPreparedResponse(outcome=value).SerializeToString()  # type: ignore[arg-type]


async def _prepared_and_due(core: Core, n_steps: int = 2) -> str:
    new = new_job(n_steps, retry=policy(initial=2.0, coefficient=2.0))
    await core.prepared(new)
    core.clock.advance(10.5)  # check_prepared_after
    return new.gid


async def test_back_check_committed_submits_and_runs_the_steps() -> None:
    core = Core()
    core.transport.answer(
        QP.method, ok(_outcome(P.PREPARED_OUTCOME_COMMITTED)), op="query_prepared"
    )
    gid = await _prepared_and_due(core)
    (job,) = await core.claim()
    await core.processor.run(job)
    tx = await core.stored(gid)
    assert tx.status is TxStatus.SUCCEEDED
    check = core.transport.calls[0]
    assert check.endpoint == QP
    assert P.QueryPreparedRequest.FromString(check.payload) == P.QueryPreparedRequest(
        gid=gid, database="orders"
    )
    assert check.metadata == {"stepping-gid": gid, "stepping-op": "query_prepared"}
    assert [m for m, _ in core.methods_called()[1:]] == [method(0), method(1)]


async def test_back_check_rolled_back_aborts_without_calling_steps() -> None:
    core = Core()
    core.transport.answer(
        QP.method, ok(_outcome(P.PREPARED_OUTCOME_ROLLED_BACK)), op="query_prepared"
    )
    gid = await _prepared_and_due(core)
    (job,) = await core.claim()
    await core.processor.run(job)
    tx = await core.stored(gid)
    assert tx.status is TxStatus.ABORTED and tx.finish_time is not None
    assert "ROLLED_BACK" in tx.error
    assert len(core.transport.calls) == 1
    assert core.finals == [gid]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (fail(UNAVAILABLE, "orders down"), "QueryPrepared: UNAVAILABLE: orders down"),
        (ok(b"\xff\xff"), "QueryPrepared answered no outcome"),
        (ok(_outcome(P.PREPARED_OUTCOME_UNSPECIFIED)), "QueryPrepared answered no outcome"),
    ],
)
async def test_back_check_without_an_outcome_asks_again_with_backoff(
    answer: object, error: str
) -> None:
    core = Core()
    core.transport.answer(QP.method, answer, op="query_prepared")  # type: ignore[arg-type]
    gid = await _prepared_and_due(core)
    for attempt, delay in enumerate([2.0, 4.0, 8.0], start=1):
        (job,) = await core.claim()
        assert job.query_attempts == attempt - 1
        await core.processor.run(job)
        tx = await core.stored(gid)
        assert tx.status is TxStatus.PREPARED and tx.error == error
        assert await core.claim() == []  # not due before the backoff
        core.clock.advance(delay + 0.01)
    assert len(core.transport.calls) == 3


# -- the engine: sweeping and waiting ------------------------------------------------


async def test_the_sweeper_pass_claims_due_jobs_and_runs_them() -> None:
    core = Core()
    engine = core.engine()
    new = new_job(2)
    job = await core.submitted(new)
    await core.store.release(job)  # e.g. a dead replica's job
    assert await engine.sweep_once() == 1
    final = await engine.wait_final(new.gid, 5.0)
    assert final is not None and final.status is TxStatus.SUCCEEDED
    assert await engine.sweep_once() == 0
    for _ in range(3):
        await asyncio.sleep(0)  # the finished task's done-callback
    assert engine.active_count == 0


async def test_the_sweeper_runs_at_most_sweep_max_active_jobs_and_leaves_room_for_new_ones() -> (
    None
):
    core = Core(settings_overrides={"sweep_max_active": 3, "max_active_jobs": 10})
    gate = asyncio.Event()

    async def hold(call: Call) -> None:
        await gate.wait()

    core.transport.during = hold
    engine = core.engine()
    backlog = [new_job(1) for _ in range(8)]
    for new in backlog:
        await core.store.release(await core.submitted(new))  # due, nobody holds them
    assert await engine.sweep_once() == 3  # not 8: the backlog's share is capped
    assert await engine.sweep_once() == 0
    fresh = new_job(1)
    engine.run(await core.submitted(fresh))  # a new job still runs at once
    await asyncio.sleep(0)
    assert engine.active_count == 4
    gate.set()
    final = await engine.wait_final(fresh.gid, 5.0)
    assert final is not None and final.status is TxStatus.SUCCEEDED
    for _ in range(5):
        await asyncio.sleep(0)
    assert await engine.sweep_once() == 3  # room again, for the next 3 of the backlog


async def test_wait_final_answers_from_memory_for_a_job_run_here() -> None:
    core = Core()
    engine = core.engine()
    new = new_job(3)
    job = await core.submitted(new)
    engine.run(job)
    final = await engine.wait_final(new.gid, 5.0)
    assert final is not None and final.status is TxStatus.SUCCEEDED
    assert final == await core.stored(new.gid)  # the in-memory answer equals the stored one


async def test_shutdown_releases_jobs_in_a_backoff() -> None:
    core = Core()
    core.transport.answer(method(0), fail(UNAVAILABLE, "down"))
    engine = core.engine()
    new = new_job(1)
    engine.run(await core.submitted(new))
    await engine.shutdown(grace=1.0)
    owner, _, _ = core.store.lease_of(new.gid)
    assert owner is None
    assert core.transport.closed
