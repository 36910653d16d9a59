"""Cancel and Resume (issue 13) end to end: real TMs on one Postgres, a real participant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from stepping.contract import REASON_NOT_RESUMABLE
from stepping.tm.v1 import tm_pb2

from tests.conftest import test_settings as tm_settings
from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub, wait_status
from tests.integration.participant import FakeAnswer, Participant
from tm_service import TmServer

S = tm_pb2
DO = "/a.v1.A/Do"
UNDO = "/a.v1.A/Undo"


@pytest_asyncio.fixture
async def second_tm(database_url: str) -> AsyncIterator[TmServer]:
    """Another replica on the same database (its own replica id, its own port)."""
    server = TmServer(tm_settings(database_url, replica_id="replica-b"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


async def _calls_settle(participant: Participant, seconds: float = 1.0) -> int:
    """Wait until no call arrived for ``seconds``; the number of calls then."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n = len(participant.calls)
        await asyncio.sleep(seconds)
        if len(participant.calls) == n:
            return n
    raise AssertionError("the participant kept being called")


async def test_cancel_from_another_replica_stops_the_running_one(
    tm: TmServer, second_tm: TmServer, participant: Participant
) -> None:
    participant.fail_first[DO] = 10**6  # never succeeds: retried in memory on the TM running it
    g = gid()
    async with tm_stub(tm.target) as a, tm_stub(second_tm.target) as b:
        await a.Submit(
            S.SubmitRequest(gid=g, steps=[step(participant.target, DO, retry_policy=fast_retry())])
        )
        deadline = time.monotonic() + 30
        while len(participant.calls) < 3:  # running on replica A
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        cancelled = (await b.Cancel(S.CancelRequest(gid=g, reason="stuck for good"))).transaction
        assert cancelled.status == S.TRANSACTION_STATUS_FAILED
        assert cancelled.error == "cancelled: stuck for good"
        assert cancelled.cancel_reason == "stuck for good"
        cancelled_at = len(participant.calls)
        settled = await _calls_settle(participant)
        # At most the call in flight or the retry already due when A learned of it.
        assert settled - cancelled_at <= 1
        seen_on_a = (await a.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        assert seen_on_a.status == S.TRANSACTION_STATUS_FAILED
        again = (await a.Cancel(S.CancelRequest(gid=g, reason="other"))).transaction
        assert again.cancel_reason == "stuck for good"  # idempotent: unchanged


async def test_cancel_from_another_replica_ends_a_retry_wait_within_a_poll(
    tm: TmServer, second_tm: TmServer, participant: Participant
) -> None:
    participant.fail_first[DO] = 10**6  # down: the next try is 4 s away, waited in memory on A
    comp = S.Endpoint(target=participant.target, method=UNDO)
    slow = fast_retry(initial=4.0, maximum=4.0)
    g = gid()
    async with tm_stub(tm.target) as a, tm_stub(second_tm.target) as b:
        await a.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[step(participant.target, DO, compensation=comp, retry_policy=slow)],
                options=S.TransactionOptions(mode=S.MODE_SAGA),
            )
        )
        deadline = time.monotonic() + 30
        while not participant.calls_to(DO):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # A has recorded the failure and waits
        cancelled_at = time.monotonic()
        await b.Cancel(S.CancelRequest(gid=g, reason="operator"))
        done = await wait_status(b, g, S.TRANSACTION_STATUS_FAILED, timeout=30)
    # A stopped waiting at its lease watch's next poll and handed the saga on: the
    # compensation ran long before the 4 s retry would have, and the action was not retried.
    (undo_call,) = participant.calls_to(UNDO)
    assert undo_call.at - cancelled_at < 2.0
    assert len(participant.calls_to(DO)) == 1
    assert done.error == "cancelled: operator"
    assert done.steps[0].status == S.STEP_STATUS_COMPENSATED


async def test_cancel_from_another_replica_during_a_long_call_records_its_result(
    tm: TmServer, second_tm: TmServer, participant: Participant
) -> None:
    # 3 s calls against a 5 s lease: the call outlasts a third of it, so A renews the
    # lease mid-call and is refused there; the call may still finish within A's lease.
    participant.delays[DO] = 3.0
    participant.responses[DO] = b"made"
    comp = S.Endpoint(target=participant.target, method=UNDO)
    long = dur(10.0)
    g = gid()
    steps = [
        step(participant.target, DO, name=f"s{i}", compensation=comp, timeout=long)
        for i in range(2)
    ]
    async with tm_stub(tm.target) as a, tm_stub(second_tm.target) as b:
        await a.Submit(
            S.SubmitRequest(gid=g, steps=steps, options=S.TransactionOptions(mode=S.MODE_SAGA))
        )
        deadline = time.monotonic() + 30
        while not participant.calls_to(DO):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        tx = (await b.Cancel(S.CancelRequest(gid=g, reason="operator"))).transaction
        assert tx.status == S.TRANSACTION_STATUS_COMPENSATING
        done = await wait_status(b, g, S.TRANSACTION_STATUS_FAILED, timeout=30)
    # Step 0's call finished after the Cancel: its result was recorded, so it was undone
    # (exactly once); step 1 was never called.
    assert len(participant.calls_to(DO)) == 1
    first = done.steps[0]
    assert first.status == S.STEP_STATUS_COMPENSATED
    assert [h.op for h in first.history][:1] == [S.ATTEMPT_OP_ACTION]
    assert [c.metadata["stepping-step-index"] for c in participant.calls_to(UNDO)] == ["0"]
    got = (await _get(tm, g)).transaction
    assert got.steps[0].result == b"made"


async def _get(tm: TmServer, g: str) -> tm_pb2.GetTransactionResponse:
    async with tm_stub(tm.target) as stub:
        return await stub.GetTransaction(S.GetTransactionRequest(gid=g))


async def test_cancel_of_a_prepared_job_aborts_it(tm: TmServer, participant: Participant) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(
            S.PrepareRequest(
                gid=g,
                steps=[step(participant.target, DO)],
                query_prepared=S.Endpoint(target=participant.target),
                options=S.TransactionOptions(check_prepared_after=dur(30)),
            )
        )
        tx = (await stub.Cancel(S.CancelRequest(gid=g))).transaction
    assert tx.status == S.TRANSACTION_STATUS_ABORTED
    assert tx.cancel_reason == "cancelled by the client"
    assert participant.calls == []


async def test_cancel_of_a_saga_compensates_what_was_done(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail_first[DO + "2"] = 10**6
    comp = S.Endpoint(target=participant.target, method=UNDO)
    g = gid()
    steps = [
        step(participant.target, DO, name="first", compensation=comp, retry_policy=fast_retry()),
        step(
            participant.target,
            DO + "2",
            name="second",
            compensation=comp,
            retry_policy=fast_retry(),
        ),
    ]
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(gid=g, steps=steps, options=S.TransactionOptions(mode=S.MODE_SAGA))
        )
        deadline = time.monotonic() + 30
        while len(participant.calls_to(DO + "2")) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        tx = (await stub.Cancel(S.CancelRequest(gid=g, reason="customer left"))).transaction
        assert tx.status in (S.TRANSACTION_STATUS_COMPENSATING, S.TRANSACTION_STATUS_FAILED)
        done = await wait_status(stub, g, S.TRANSACTION_STATUS_FAILED, timeout=30)
    assert done.error == "cancelled: customer left"
    assert done.steps[0].status == S.STEP_STATUS_COMPENSATED
    undone = {c.metadata["stepping-step-index"] for c in participant.calls_to(UNDO)}
    assert "0" in undone


async def test_resume_after_fixing_the_participant_skips_what_succeeded(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail(DO + "2", FakeAnswer(grpc.StatusCode.ABORTED, "bug in v1"))
    g = gid()
    steps = [
        step(participant.target, DO, name="one"),
        step(participant.target, DO + "2", name="two"),
        step(participant.target, DO + "3", name="three"),
    ]
    async with tm_stub(tm.target) as stub:
        failed = (
            await stub.Submit(
                S.SubmitRequest(gid=g, steps=steps, wait_result=True, wait_timeout=dur(20))
            )
        ).transaction
        assert failed.status == S.TRANSACTION_STATUS_FAILED, failed.error
        # the participant is fixed now (its script is used up): Resume
        resumed = (await stub.Resume(S.ResumeRequest(gid=g))).transaction
        assert resumed.status in (S.TRANSACTION_STATUS_SUBMITTED, S.TRANSACTION_STATUS_SUCCEEDED)
        done = await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED, timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Resume(S.ResumeRequest(gid=g))  # finished well: nothing to resume
    assert [len(participant.calls_to(m)) for m in (DO, DO + "2", DO + "3")] == [1, 2, 1]
    assert [s.attempts for s in done.steps] == [1, 1, 1]  # fresh attempts after the Resume
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    infos = []
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            infos.append(info.reason)
    assert infos == [REASON_NOT_RESUMABLE]


async def test_resume_of_a_resumed_job_returns_it(tm: TmServer, participant: Participant) -> None:
    participant.fail(DO, FakeAnswer(grpc.StatusCode.ABORTED, "no"))
    participant.delays[DO + "2"] = 2.0  # the resumed job is still running at the second Resume
    g = gid()
    steps = [step(participant.target, DO), step(participant.target, DO + "2")]
    async with tm_stub(tm.target) as stub:
        failed = (
            await stub.Submit(
                S.SubmitRequest(gid=g, steps=steps, wait_result=True, wait_timeout=dur(20))
            )
        ).transaction
        assert failed.status == S.TRANSACTION_STATUS_FAILED
        first = (await stub.Resume(S.ResumeRequest(gid=g))).transaction
        second = (await stub.Resume(S.ResumeRequest(gid=g))).transaction
        assert first.status == second.status == S.TRANSACTION_STATUS_SUBMITTED
        await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED, timeout=30)
    assert len(participant.calls_to(DO)) == 2 and len(participant.calls_to(DO + "2")) == 1


async def test_get_transaction_details_and_light_lists(
    tm: TmServer, participant: Participant
) -> None:
    g = gid()
    comp = S.Endpoint(target=participant.target, method=UNDO)
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    steps = [
        step(
            participant.target,
            DO,
            b"\x01pay",
            name="one",
            headers={"x-tenant": "acme"},
            compensation=comp,
            retry_policy=fast_retry(attempts=7),
            timeout=dur(2.5),
        )
    ]
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=steps,
                options=S.TransactionOptions(mode=S.MODE_SAGA, deadline=dur(60)),
                wait_result=True,
                wait_timeout=dur(20),
            ),
            metadata=(("traceparent", trace),),
        )
        tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        listed = (await stub.ListTransactions(S.ListTransactionsRequest())).transactions
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
    assert tx.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert tx.options.mode == S.MODE_SAGA and tx.options.deadline.ToTimedelta().seconds == 60
    assert tx.HasField("deadline_time") and tx.cancel_reason == "" and tx.needs_attention == ""
    (st,) = tx.steps
    assert st.payload == b"\x01pay" and dict(st.headers) == {"x-tenant": "acme"}
    assert (st.action.target, st.action.method) == (participant.target, DO)
    assert st.compensation.method == UNDO
    assert st.retry_policy.maximum_attempts == 7
    assert st.timeout.ToMilliseconds() == 2500
    (light,) = [t for t in listed if t.gid == g]
    assert light.steps[0].payload == b"" and not light.steps[0].HasField("action")
    assert light.steps[0].result == b""


async def test_watch_streams_each_change_until_final_from_any_replica(
    tm: TmServer, second_tm: TmServer, participant: Participant
) -> None:
    participant.delays[DO] = 0.8
    participant.delays[DO + "2"] = 0.8
    g = gid()
    steps = [step(participant.target, DO), step(participant.target, DO + "2")]

    async def watch(target: str, gid_: str) -> list[tm_pb2.Transaction]:
        async with tm_stub(target) as stub:
            call = stub.WatchTransaction(S.WatchTransactionRequest(gid=gid_))
            return [r.transaction async for r in call]

    async with tm_stub(tm.target) as a:
        await a.Submit(S.SubmitRequest(gid=g, steps=steps))
    # A runs the job (in-process wake-ups); B sees it only by polling the store.
    here, there = await asyncio.gather(watch(tm.target, g), watch(second_tm.target, g))
    after = await watch(second_tm.target, g)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await watch(tm.target, gid())
    for seen in (here, there):
        assert seen[0].status == S.TRANSACTION_STATUS_SUBMITTED
        assert seen[-1].status == S.TRANSACTION_STATUS_SUCCEEDED
        counts = [sum(s.status == S.STEP_STATUS_SUCCEEDED for s in t.steps) for t in seen]
        assert counts == sorted(counts) and 1 in counts  # step 0's change was seen
        assert len({t.update_time.ToNanoseconds() for t in seen}) == len(seen)  # no repeats
    assert here[-1].steps[0].action.method == DO  # watches carry the details
    assert [t.status for t in after] == [S.TRANSACTION_STATUS_SUCCEEDED]  # final: one message
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_watches_are_bounded(database_url: str, participant: Participant) -> None:
    server = TmServer(tm_settings(database_url, max_watches=0))
    await server.start()
    try:
        async with tm_stub(server.target) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as busy:
                async for _ in stub.WatchTransaction(S.WatchTransactionRequest(gid=gid())):
                    pass
    finally:
        await server.stop(grace=1.0)
    assert busy.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_non_retryable_codes_are_validated_and_stored(
    tm: TmServer, participant: Participant
) -> None:
    bad = S.RetryPolicy(non_retryable_codes=["NOT_FOUND", "NOPE"])
    good = S.RetryPolicy(non_retryable_codes=["NOT_FOUND", "INVALID_ARGUMENT"])
    participant.fail(DO, FakeAnswer(grpc.StatusCode.NOT_FOUND, "no such order"))
    g = gid()
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Submit(
                S.SubmitRequest(gid=gid(), steps=[step(participant.target, DO, retry_policy=bad)])
            )
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=g,
                    steps=[step(participant.target, DO, retry_policy=good)],
                    wait_result=True,
                    wait_timeout=dur(20),
                )
            )
        ).transaction
        got = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            d.Unpack(bad_request)
            fields += [(v.field, v.description) for v in bad_request.field_violations]
    assert fields[0][0] == "steps[0].retry_policy.non_retryable_codes[1]"
    assert "UNIMPLEMENTED" in fields[0][1]  # the valid names are listed
    assert tx.status == S.TRANSACTION_STATUS_FAILED and tx.steps[0].attempts == 1
    assert list(got.steps[0].retry_policy.non_retryable_codes) == ["NOT_FOUND", "INVALID_ARGUMENT"]


async def test_an_unimplemented_compensation_waits_for_an_operator_who_cancels(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail("/a.v1.A/Charge", FakeAnswer(grpc.StatusCode.ABORTED, "card declined"))
    participant.fail(UNDO, *[FakeAnswer(grpc.StatusCode.UNIMPLEMENTED, "no Undo here")] * 5)
    g = gid()
    undo = S.Endpoint(target=participant.target, method=UNDO)
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g,
                options=S.TransactionOptions(mode=S.MODE_SAGA),
                steps=[
                    step(participant.target, DO, compensation=undo),
                    step(participant.target, "/a.v1.A/Charge"),
                ],
            )
        )
        deadline = time.monotonic() + 30
        while True:
            got = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
            if got.needs_attention or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert got.status == S.TRANSACTION_STATUS_COMPENSATING
        assert "no Undo here" in got.needs_attention
        listed = await stub.ListTransactions(
            S.ListTransactionsRequest(filter=S.TransactionFilter(needs_attention=True))
        )
        assert g in [t.gid for t in listed.transactions]
        assert await _calls_settle(participant) == 3  # Do, Charge, one Undo: not retried
        done = await stub.Cancel(S.CancelRequest(gid=g, reason="refunded by hand"))
        assert done.transaction.status == S.TRANSACTION_STATUS_FAILED
        assert "left undone" in done.transaction.error
