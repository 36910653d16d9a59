"""Cancel and Resume as the processor sees them (issue 13): in memory, fake time."""

from __future__ import annotations

import asyncio

import grpc

from tests.fakes import Call, fail, ok
from tests.unit.processing.harness import Core, method, new_job, policy, undo
from tm_service.domain import Mode, RetryPolicy, StepStatus, TxStatus

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


async def test_a_cancel_elsewhere_during_a_call_stops_the_job_after_it() -> None:
    core = Core()
    new = new_job(3)

    async def cancel_during_step_1(call: Call) -> None:
        if call.step == 1:
            assert await core.store.cancel(new.gid, "operator")

    core.transport.during = cancel_during_step_1
    core.transport.answer(method(1), ok(b"done-1"))
    tx = await core.run(new)
    assert tx.status is TxStatus.FAILED and tx.error == "cancelled: operator"
    assert tx.cancel_reason == "operator"
    # The call in flight ended and its result is recorded; step 2 was never called.
    assert core.methods_called() == [(method(0), "action"), (method(1), "action")]
    assert [s.status for s in tx.steps] == [StepStatus.SUCCEEDED] * 2 + [StepStatus.PENDING]
    assert tx.steps[1].result == b"done-1" and len(tx.steps[1].history) == 1


async def test_a_cancel_during_an_inline_retry_calls_at_most_once_more() -> None:
    core = Core()
    new = new_job(2)
    core.transport.answer(method(0), fail(UNAVAILABLE, "down"))

    async def cancel_on_third_call(call: Call) -> None:
        if len(core.transport.calls) == 3:
            assert await core.store.cancel(new.gid, "stuck")

    core.transport.during = cancel_on_third_call
    tx = await core.run(new)
    assert tx.status is TxStatus.FAILED
    assert len(core.transport.calls) == 3  # the failed write of the third attempt stopped it
    # ... and that third attempt is recorded all the same.
    assert tx.steps[0].attempts == 3 and len(tx.steps[0].history) == 3


async def test_a_cancelled_saga_is_compensated_by_the_next_claim() -> None:
    core = Core()
    new = new_job(3, mode=Mode.SAGA)

    async def cancel_during_step_1(call: Call) -> None:
        if call.step == 1 and call.op == "action":
            assert await core.store.cancel(new.gid, "customer left")

    core.transport.during = cancel_during_step_1
    tx = await core.run(new)
    assert tx.status is TxStatus.COMPENSATING
    core.transport.during = None
    (job,) = await core.claim("r2")
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.FAILED and tx.error == "cancelled: customer left"
    # Step 1 was in flight when cancelled: it finished, was recorded, and is undone too.
    assert [s.status for s in tx.steps[:2]] == [StepStatus.COMPENSATED] * 2
    assert core.transport.calls_to(method(2)) == []
    assert [c.endpoint.method for c in core.transport.calls if c.op == "compensate"] == [
        undo(1),
        undo(0),
    ]


async def test_a_cancel_elsewhere_ends_an_inline_retry_wait_within_a_poll() -> None:
    core = Core()
    new = new_job(2, mode=Mode.SAGA, retry=policy(initial=8.0))
    core.transport.answer(method(0), fail(UNAVAILABLE, "down"))
    engine = core.engine()
    engine.start()
    engine.run(await core.submitted(new))
    await core.clock.wait(asyncio.Event(), 1.5)  # the job now waits 8 s for its retry
    assert await core.store.cancel(new.gid, "give up")  # on "another replica"
    await core.clock.wait(asyncio.Event(), 1.5)  # the next poll of the lease watch tells it
    # It stopped waiting without another call and handed the saga back at once.
    assert len(core.transport.calls_to(method(0))) == 1
    assert engine.active_count == 0
    # Nothing was in flight (the attempt is recorded), so nothing is undone just in case.
    assert core.store._rows[new.gid].cancelled_token is None
    await core.clock.wait(asyncio.Event(), 1.5)  # a sweep compensates it
    await engine.shutdown(grace=1.0)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.FAILED and tx.error == "cancelled: give up"
    assert [c.step for c in core.transport.calls_to(undo(0), "compensate")] == [0]
    assert core.clock.elapsed < 8.0


async def test_a_long_call_cancelled_elsewhere_may_finish_and_is_recorded() -> None:
    core = Core()
    new = new_job(2, timeout=100.0)  # outlasts the 30 s lease: renewed while in flight

    async def cancel_mid_call(call: Call) -> None:
        await core.clock.wait(asyncio.Event(), 5.0)
        assert await core.store.cancel(new.gid, "operator")
        await core.clock.wait(asyncio.Event(), 15.0)  # ends at 20 s, within the lease

    core.transport.during = cancel_mid_call
    core.transport.answer(method(0), ok(b"late"))
    tx = await core.run(new)
    assert tx.status is TxStatus.FAILED and tx.error == "cancelled: operator"
    assert tx.steps[0].status is StepStatus.SUCCEEDED and tx.steps[0].result == b"late"
    assert core.transport.calls_to(method(1)) == []


async def test_a_cancelled_call_that_outlasts_the_lease_is_cut_off_and_compensated() -> None:
    core = Core()
    new = new_job(2, mode=Mode.SAGA, timeout=100.0)

    async def cancel_then_hang(call: Call) -> None:
        if call.op == "action":
            await core.clock.wait(asyncio.Event(), 5.0)
            assert await core.store.cancel(new.gid, "operator")
            await core.clock.wait(asyncio.Event(), 90.0)

    core.transport.during = cancel_then_hang
    tx = await core.run(new)
    assert tx.status is TxStatus.COMPENSATING
    assert core.clock.elapsed < 30.0  # cut off before the lease held here ran out
    (job,) = await core.claim("r2")  # released at once
    assert job.cancel_in_flight
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    # Step 0's effect is unknown (its call was cut off): it is compensated just in case.
    assert tx.status is TxStatus.FAILED
    assert [c.endpoint.method for c in core.transport.calls if c.op == "compensate"] == [undo(0)]


async def test_a_saga_cancelled_while_its_replica_is_dead_compensates_the_running_step() -> None:
    core = Core()
    new = new_job(3, mode=Mode.SAGA)
    await core.submitted(new)  # held by r1, which dies mid-call (no processor runs)
    assert await core.store.cancel(new.gid, "operator")
    assert await core.claim("r2") == []  # r1's lease is kept: it may still report
    core.clock.advance(31.0)
    (job,) = await core.claim("r2")
    assert job.cancel_in_flight
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.FAILED
    assert [c.endpoint.method for c in core.transport.calls] == [undo(0)]


async def test_resume_runs_only_the_steps_that_did_not_succeed() -> None:
    core = Core()
    new = new_job(3)
    core.transport.answer(method(1), fail(grpc.StatusCode.ABORTED, "bug"), ok(b"fixed"))
    tx = await core.run(new)
    assert tx.status is TxStatus.FAILED
    resumed = await core.store.resume(new.gid, owner="r1", lease=30.0)
    assert resumed is not None
    core.ctx.mark_claimed(resumed[0])
    await core.processor.run(resumed[0])
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED and tx.error == ""
    assert [len(core.transport.calls_to(method(i))) for i in range(3)] == [1, 2, 1]
    assert [s.attempts for s in tx.steps] == [1, 1, 1]
    assert tx.steps[1].result == b"fixed"


async def test_last_error_is_cleared_once_the_step_succeeds() -> None:
    core = Core()
    core.transport.answer(method(0), fail(UNAVAILABLE, "down"), fail(UNAVAILABLE, "down"), ok())
    tx = await core.run(new_job(1))
    assert tx.status is TxStatus.SUCCEEDED
    assert tx.steps[0].attempts == 3 and tx.steps[0].last_error == ""


async def test_unimplemented_fails_an_action_at_once() -> None:
    core = Core()
    core.transport.answer(method(1), fail(grpc.StatusCode.UNIMPLEMENTED, "unknown method"))
    tx = await core.run(new_job(3))
    assert tx.status is TxStatus.FAILED
    assert tx.steps[1].attempts == 1  # not retried
    assert tx.error == (
        "step 1 (s1) failed: UNIMPLEMENTED: unknown method"
        " (not retried: non-retryable code UNIMPLEMENTED)"
    )
    assert core.transport.calls_to(method(2)) == []


async def test_unimplemented_in_a_saga_compensates_what_was_done() -> None:
    core = Core()
    core.transport.answer(method(1), fail(grpc.StatusCode.UNIMPLEMENTED, "unknown method"))
    tx = await core.run(new_job(3, mode=Mode.SAGA))
    assert tx.status is TxStatus.FAILED
    assert tx.steps[0].status is StepStatus.COMPENSATED
    assert len(core.transport.calls_to(method(1), "action")) == 1


async def test_a_steps_own_non_retryable_codes_replace_the_default() -> None:
    core = Core()
    retry = RetryPolicy(1.0, 2.0, 60.0, 0, ("NOT_FOUND",))
    core.transport.answer(
        method(0),
        fail(grpc.StatusCode.UNIMPLEMENTED, "deploying"),
        fail(grpc.StatusCode.NOT_FOUND, "no row"),
    )
    tx = await core.run(new_job(1, retry=retry))
    assert tx.status is TxStatus.FAILED
    assert tx.steps[0].attempts == 2  # UNIMPLEMENTED retried (not in the list), NOT_FOUND not
    assert tx.error.endswith("(not retried: non-retryable code NOT_FOUND)")


# -- a compensation no retry can help: parked, waiting for an operator -------------------
async def _parked(core: Core) -> str:
    """A saga whose step 1 fails for good and whose step 0 cannot be compensated."""
    core.transport.answer(method(1), fail(grpc.StatusCode.ABORTED, "no stock"))
    core.transport.answer(
        undo(0), fail(grpc.StatusCode.UNIMPLEMENTED, "Undo not registered"), ok(), op="compensate"
    )
    new = new_job(2, mode=Mode.SAGA)
    tx = await core.run(new)
    assert tx.status is TxStatus.COMPENSATING
    return new.gid


async def test_an_unimplemented_compensation_parks_the_job_instead_of_retrying() -> None:
    core = Core()
    gid = await _parked(core)
    tx = await core.stored(gid)
    assert "step 0 (s0): its compensation failed with a non-retryable code" in tx.needs_attention
    assert "UNIMPLEMENTED: Undo not registered" in tx.needs_attention
    assert len(core.transport.calls_to(undo(0), "compensate")) == 1  # not retried
    assert tx.steps[0].history[-1].op == "compensate"
    core.clock.advance(365 * 86400.0)
    assert await core.claim() == []  # not due: only an operator moves it
    owner, _, _ = core.store.lease_of(gid)
    assert owner is None


async def test_cancel_gives_up_on_a_parked_compensation() -> None:
    core = Core()
    gid = await _parked(core)
    assert await core.store.cancel(gid, "refunded by hand")
    tx = await core.stored(gid)
    assert tx.status is TxStatus.FAILED and tx.finish_time is not None
    assert tx.error.startswith("cancelled: refunded by hand (left undone: step 0 (s0)")
    assert tx.needs_attention == "" and tx.cancel_reason == "refunded by hand"
    assert tx.steps[0].status is StepStatus.SUCCEEDED  # its effect was not undone
    assert not await core.store.cancel(gid, "again")  # final now: unchanged


async def test_resume_retries_a_parked_compensation_after_a_fix() -> None:
    core = Core()
    gid = await _parked(core)
    moved = await core.store.resume(gid, owner="r1", lease=30.0)
    assert moved is not None
    job, tx = moved
    assert tx.status is TxStatus.COMPENSATING and tx.needs_attention == ""
    core.ctx.mark_claimed(job)
    await core.processor.run(job)  # the participant was fixed: Undo answers OK now
    tx = await core.stored(gid)
    assert tx.status is TxStatus.FAILED and tx.needs_attention == ""
    assert tx.steps[0].status is StepStatus.COMPENSATED
    assert len(core.transport.calls_to(undo(0), "compensate")) == 2
