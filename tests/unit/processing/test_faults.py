"""Faults around a running job: calls longer than the lease, the database going away."""

from __future__ import annotations

import asyncio

import grpc

from tests.fakes import Call, fail, ok
from tests.unit.processing.harness import Core, method, new_job
from tm_service.domain import StepStatus, TxStatus


def _never() -> asyncio.Event:
    return asyncio.Event()


async def test_a_call_longer_than_the_lease_keeps_it_and_is_delivered_once() -> None:
    core = Core({"lease_seconds": 3.0})
    new = new_job(2, timeout=20.0)
    probes: list[int] = []

    async def slow(call: Call) -> None:
        if call.step != 0:
            return
        for _ in range(6):  # a 6 s call; every second another replica tries to claim the job
            await core.clock.wait(_never(), 1.0)
            probes.append(len(await core.store.claim_due(owner="r2", lease=3.0, limit=10)))

    core.transport.during = slow
    tx = await core.run(new)
    assert tx.status is TxStatus.SUCCEEDED
    assert probes == [0] * 6  # never claimable while the call ran
    assert len(core.transport.calls_to(method(0))) == 1
    assert core.clock.elapsed >= 6.0
    assert core.store.writes(new.gid) >= 1 + 6 // 1 + 2  # renewals while in flight


async def test_a_call_is_cancelled_before_an_unrenewable_lease_lapses() -> None:
    core = Core({"lease_seconds": 3.0})
    new = new_job(1, timeout=20.0)
    cancelled_at: list[float] = []

    async def slow(call: Call) -> None:
        if len(core.transport.calls) == 1:
            core.store.down = True  # the database goes away as the call starts ...

            async def back_later() -> None:
                await core.clock.wait(_never(), 8.0)
                core.store.down = False  # ... and comes back at t = 8 s

            asyncio.get_running_loop().create_task(back_later())
            try:
                await core.clock.wait(_never(), 10.0)
            except asyncio.CancelledError:
                cancelled_at.append(core.clock.elapsed)
                raise

    core.transport.during = slow
    job = await core.submitted(new)
    await core.processor.run(job)
    # The call was cut before the 3 s lease taken at t = 0 could lapse.
    assert len(cancelled_at) == 1 and cancelled_at[0] < 3.0
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED
    assert len(core.transport.calls) == 2  # delivered again once the database was back
    assert core.transport.calls[1].at >= 8.0


async def test_a_write_lost_with_the_database_is_retried_after_a_reload() -> None:
    core = Core()
    new = new_job(3)
    job = await core.submitted(new)

    async def outage(call: Call) -> None:
        if call.step == 1 and len(core.transport.calls) == 2:
            core.store.fail_next = 3  # step 1's write and two reloads fail

    core.transport.during = outage
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED
    # Step 1's result was never stored, so it is delivered again; step 0 is not.
    assert [c.endpoint.method for c in core.transport.calls] == [
        method(0),
        method(1),
        method(1),
        method(2),
    ]
    assert core.clock.waited[:3] == [0.5, 1.0, 2.0]  # backoff while waiting for the database


async def test_a_write_committed_but_unanswered_is_not_redone() -> None:
    core = Core()
    new = new_job(3)
    job = await core.submitted(new)

    async def lose_answer(call: Call) -> None:
        if call.step == 1:
            core.store.commit_then_fail = 1

    core.transport.during = lose_answer
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED
    # The reload shows step 1 done: it is not called twice.
    assert [c.endpoint.method for c in core.transport.calls] == [method(0), method(1), method(2)]


async def test_a_job_taken_over_during_the_outage_is_left_alone() -> None:
    core = Core({"lease_seconds": 10.0})
    new = new_job(2)
    job = await core.submitted(new)

    async def outage(call: Call) -> None:
        if call.step == 0:
            core.clock.advance(11.0)
            (theirs,) = await core.claim("r2")  # r2 took the lapsed job meanwhile
            assert theirs.lease_token == 2
            core.store.fail_next = 1  # and r1's write of the step fails

    core.transport.during = outage
    await core.processor.run(job)
    assert len(core.transport.calls) == 1  # r1 stopped: the job is r2's now
    owner, token, _ = core.store.lease_of(new.gid)
    assert (owner, token) == ("r2", 2)


async def test_a_job_finished_before_the_outage_wakes_its_waiters() -> None:
    core = Core()
    new = new_job(1)
    job = await core.submitted(new)

    async def lose_last(call: Call) -> None:
        core.store.commit_then_fail = 1  # the finishing write commits, its answer is lost

    core.transport.during = lose_last
    await core.processor.run(job)
    assert job.status is TxStatus.SUCCEEDED  # the reloaded state, in place
    assert core.finals == [new.gid]
    assert (await core.stored(new.gid)).steps[0].status is StepStatus.SUCCEEDED


async def test_the_database_down_during_a_backoff_write_pauses_then_resumes() -> None:
    core = Core()
    core.transport.answer(method(0), fail(grpc.StatusCode.UNAVAILABLE, "down"), ok())
    new = new_job(1)
    job = await core.submitted(new)
    core.store.fail_next = 1  # the failed attempt's record cannot be written
    await core.processor.run(job)
    tx = await core.stored(new.gid)
    assert tx.status is TxStatus.SUCCEEDED


async def test_a_job_its_own_sweeper_reclaims_during_an_outage_goes_on_at_once() -> None:
    core = Core({"lease_seconds": 3.0})
    new = new_job(2)
    engine = core.engine()

    async def outage(call: Call) -> None:
        if len(core.transport.calls) == 1:
            core.clock.advance(4.0)  # the 3 s lease lapses during an outage ...
            (mine,) = await core.claim("r1")  # ... this replica's sweeper claims it again
            engine.run(mine)
            core.store.fail_next = 1  # ... and step 0's write fails: the processor waits

    core.transport.during = outage
    engine.run(await core.submitted(new))
    tx = await engine.wait_final(new.gid, timeout=60.0)
    assert tx is not None and tx.status is TxStatus.SUCCEEDED
    # Went on from the new claim, not after that lease lapsed too.
    assert core.clock.elapsed - 4.0 < 3.0
    assert [c.endpoint.method for c in core.transport.calls] == [method(0), method(0), method(1)]
    await engine.shutdown(grace=1.0)
