"""The QueryPrepared back-check of jobs whose client never submitted nor aborted."""

from __future__ import annotations

import asyncio

import grpc
from stepping.participant.v1 import participant_pb2
from stepping.tm.v1 import tm_pb2 as S

from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub, wait_status
from tests.integration.participant import QP_METHOD, FakeAnswer, Participant
from tm_service import TmServer


def _prepare(target: str, g: str, qp_target: str, **kw: object) -> S.PrepareRequest:
    return S.PrepareRequest(
        gid=g,
        steps=[step(target, "/o.v1.Orders/Ship", b"order-1"), step(target, "/o.v1.Mail/Send")],
        query_prepared=S.Endpoint(target=qp_target),
        options=S.TransactionOptions(
            check_prepared_after=dur(0.3), retry_policy=fast_retry(0.2, maximum=0.5)
        ),
        **kw,  # type: ignore[arg-type]
    )


async def test_committed_runs_the_steps(tm: TmServer, participant: Participant) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(_prepare(participant.target, g, participant.target, database="tenant-a"))
        await asyncio.sleep(0.1)
        assert participant.query_calls == []  # not before check_prepared_after
        tx = await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED)
    assert [q.gid for q in participant.query_calls] == [g]
    assert participant.query_calls[0].database == "tenant-a"
    assert [c.method for c in participant.calls] == ["/o.v1.Orders/Ship", "/o.v1.Mail/Send"]
    assert tx.error == ""


async def test_rolled_back_aborts(tm: TmServer, participant: Participant) -> None:
    participant.prepared_outcome = participant_pb2.PREPARED_OUTCOME_ROLLED_BACK
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(_prepare(participant.target, g, participant.target))
        tx = await wait_status(stub, g, S.TRANSACTION_STATUS_ABORTED)
        await asyncio.sleep(0.5)
    assert "ROLLED_BACK" in tx.error
    assert participant.calls == []
    assert len(participant.query_calls) == 1


async def test_unreachable_then_reachable_is_resolved(
    tm: TmServer, participant: Participant
) -> None:
    # The back-check endpoint is a port where nothing listens yet.
    qp = await Participant().start()
    qp_port = qp.port
    await qp.stop()
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(_prepare(participant.target, g, f"127.0.0.1:{qp_port}"))
        await asyncio.sleep(1.2)
        tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        assert tx.status == S.TRANSACTION_STATUS_PREPARED
        assert "QueryPrepared: UNAVAILABLE" in tx.error
        assert participant.calls == []
        revived = await Participant().start(port=qp_port)
        try:
            tx = await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED)
        finally:
            await revived.stop()
    assert len(revived.query_calls) == 1
    assert len(participant.calls) == 2


async def test_back_check_error_status_is_asked_again(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail(
        QP_METHOD,
        FakeAnswer(grpc.StatusCode.INTERNAL, "db down"),
        FakeAnswer(grpc.StatusCode.UNAVAILABLE, "still down"),
    )
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(_prepare(participant.target, g, participant.target))
        await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED)
    assert len(participant.query_calls) == 3


async def test_submit_during_back_check_window_runs_once(
    tm: TmServer, participant: Participant
) -> None:
    """Submit racing the back-check: the steps still run exactly once each."""
    participant.delays[QP_METHOD] = 0.0
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(_prepare(participant.target, g, participant.target))
        await asyncio.sleep(0.3)
        await stub.Submit(S.SubmitRequest(gid=g))
        await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED)
        await asyncio.sleep(0.5)
    assert [c.method for c in participant.calls] == ["/o.v1.Orders/Ship", "/o.v1.Mail/Send"]
