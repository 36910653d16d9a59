"""Message-mode jobs end to end: a real TM, real Postgres, plain-grpcio participants."""

from __future__ import annotations

import itertools

import grpc
import pytest
from stepping.tm.v1 import tm_pb2

from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub, wait_status
from tests.integration.participant import FakeAnswer, Participant
from tm_service import TmServer

S = tm_pb2


async def test_prepare_then_submit_runs_each_step_once_in_order(
    tm: TmServer, participant: Participant
) -> None:
    g = gid()
    steps = [
        step(
            participant.target,
            "/bank.v1.Bank/Debit",
            b"\x00debit",
            name="debit",
            headers={"x-tenant": "acme"},
        ),
        step(participant.target, "/bank.v1.Bank/Credit", b"\x01credit", name="credit"),
        step(participant.target, "/mail.v1.Mail/Send", b"", name="mail"),
    ]
    async with tm_stub(tm.target) as stub:
        prepared = await stub.Prepare(
            S.PrepareRequest(
                gid=g, steps=steps, query_prepared=S.Endpoint(target=participant.target)
            ),
            metadata=(("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),),
        )
        assert prepared.transaction.status == S.TRANSACTION_STATUS_PREPARED
        assert participant.calls == []
        done = await stub.Submit(S.SubmitRequest(gid=g, wait_result=True, wait_timeout=dur(10)))
    tx = done.transaction
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED, tx.error
    assert [c.method for c in participant.calls] == [
        "/bank.v1.Bank/Debit",
        "/bank.v1.Bank/Credit",
        "/mail.v1.Mail/Send",
    ]
    assert [c.payload for c in participant.calls] == [b"\x00debit", b"\x01credit", b""]
    first = participant.calls[0].metadata
    assert first["stepping-gid"] == g
    assert first["stepping-step-index"] == "0"
    assert first["stepping-step-name"] == "debit"
    assert first["stepping-op"] == "action"
    assert first["stepping-attempt"] == "1"
    assert first["x-tenant"] == "acme"
    assert first["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert "x-tenant" not in participant.calls[1].metadata
    assert [s.status for s in tx.steps] == [S.STEP_STATUS_SUCCEEDED] * 3
    assert tx.steps[0].result == b"ok:\x00debit"
    assert tx.finish_time.seconds > 0
    assert participant.query_calls == []


async def test_prepare_then_abort_calls_no_step(tm: TmServer, participant: Participant) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(
            S.PrepareRequest(
                gid=g,
                steps=[step(participant.target, "/a.v1.A/Do")],
                query_prepared=S.Endpoint(target=participant.target),
                options=S.TransactionOptions(check_prepared_after=dur(0.2)),
            )
        )
        aborted = (await stub.Abort(S.AbortRequest(gid=g, reason="insufficient stock"))).transaction
        assert aborted.status == S.TRANSACTION_STATUS_ABORTED
        assert aborted.error == "insufficient stock"
        again = (await stub.Abort(S.AbortRequest(gid=g))).transaction
        assert again.status == S.TRANSACTION_STATUS_ABORTED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Submit(S.SubmitRequest(gid=g))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        import asyncio

        await asyncio.sleep(0.6)  # past check_prepared_after: no back-check either
    assert participant.calls == []
    assert participant.query_calls == []


async def test_unavailable_is_retried_with_growing_intervals(
    tm: TmServer, participant: Participant
) -> None:
    method = "/flaky.v1.Flaky/Do"
    participant.fail(method, *[FakeAnswer(grpc.StatusCode.UNAVAILABLE, "down")] * 3)
    g = gid()
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=g,
                    steps=[step(participant.target, method, b"p")],
                    options=S.TransactionOptions(retry_policy=fast_retry(initial=0.1, backoff=2.0)),
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED, tx.error
    calls = participant.calls_to(method)
    assert [c.metadata["stepping-attempt"] for c in calls] == ["1", "2", "3", "4"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    # 0.1, 0.2, 0.4 s: each wait grows by the backoff coefficient.
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps
    assert gaps[0] < gaps[1] < gaps[2]
    assert tx.steps[0].attempts == 4
    assert tx.steps[0].last_error == ""  # cleared once the step succeeded


async def test_failed_precondition_retries_at_the_base_interval(
    tm: TmServer, participant: Participant
) -> None:
    method = "/slow.v1.Slow/Ready"
    participant.fail(method, *[FakeAnswer(grpc.StatusCode.FAILED_PRECONDITION, "not yet")] * 3)
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step(participant.target, method)],
                    options=S.TransactionOptions(
                        retry_policy=fast_retry(initial=0.15, backoff=4.0)
                    ),
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
    calls = participant.calls_to(method)
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert len(gaps) == 3
    # No backoff growth: every wait is the base interval (0.15 s), never 0.6 s or 2.4 s.
    assert all(0.14 <= g_ < 0.5 for g_ in gaps), gaps


async def test_aborted_step_fails_the_job_and_stops_later_steps(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail(
        "/bank.v1.Bank/Debit", FakeAnswer(grpc.StatusCode.ABORTED, "insufficient funds")
    )
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[
                        step(participant.target, "/bank.v1.Bank/Debit", name="debit"),
                        step(participant.target, "/bank.v1.Bank/Credit", name="credit"),
                    ],
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_FAILED
    assert "insufficient funds" in tx.error and "debit" in tx.error
    assert [c.method for c in participant.calls] == ["/bank.v1.Bank/Debit"]
    assert tx.steps[0].status == S.STEP_STATUS_FAILED
    assert tx.steps[1].status == S.STEP_STATUS_PENDING and tx.steps[1].attempts == 0


async def test_exhausted_attempts_fail_the_job(tm: TmServer, participant: Participant) -> None:
    method = "/flaky.v1.Flaky/Never"
    participant.fail(method, *[FakeAnswer(grpc.StatusCode.INTERNAL, "boom")] * 10)
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[
                        step(participant.target, method, retry_policy=fast_retry(0.02, attempts=3)),
                        step(participant.target, "/x.v1.X/Next"),
                    ],
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_FAILED
    assert "after 3 attempts" in tx.error and "boom" in tx.error
    assert len(participant.calls_to(method)) == 3
    assert participant.calls_to("/x.v1.X/Next") == []


async def test_step_timeout_counts_as_a_retryable_failure(
    tm: TmServer, participant: Participant
) -> None:
    method = "/slow.v1.Slow/Hang"
    participant.fail(method, FakeAnswer(grpc.StatusCode.OK, delay=1.0))
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step(participant.target, method, timeout=dur(0.2))],
                    options=S.TransactionOptions(retry_policy=fast_retry(0.05)),
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
    assert tx.steps[0].attempts == 2  # the first attempt timed out and was retried
    assert tx.steps[0].last_error == ""  # cleared once the step succeeded


async def test_long_retry_delays_wait_in_the_database(
    tm: TmServer, participant: Participant
) -> None:
    """A delay above inline_retry_max_seconds releases the job; the sweeper resumes it."""
    method = "/flaky.v1.Flaky/Later"
    participant.fail(method, FakeAnswer(grpc.StatusCode.UNAVAILABLE, "down"))
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[step(participant.target, method)],
                options=S.TransactionOptions(retry_policy=fast_retry(initial=6.0, maximum=6.0)),
            )
        )
        pending = await wait_status(stub, g, S.TRANSACTION_STATUS_SUBMITTED)
        import asyncio

        await asyncio.sleep(0.3)
        pending = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        assert pending.steps[0].attempts == 1
        assert pending.steps[0].next_attempt_time.seconds > 0
        assert tm.engine is not None and tm.engine.active_count == 0  # nothing held in memory
        tx = await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED, timeout=12)
    assert tx.steps[0].attempts == 2


async def test_concurrent_steps_all_run(tm: TmServer, participant: Participant) -> None:
    participant.delays["/c.v1.C/Slow"] = 0.3
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step(participant.target, "/c.v1.C/Slow", bytes([i])) for i in range(4)],
                    options=S.TransactionOptions(concurrent=True),
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
    calls = participant.calls_to("/c.v1.C/Slow")
    assert sorted(c.payload for c in calls) == [bytes([i]) for i in range(4)]
    assert max(c.at for c in calls) - min(c.at for c in calls) < 0.25  # started together
