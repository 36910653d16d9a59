"""Every call the TM makes is in GetTransaction's history (issue 13), on real Postgres."""

from __future__ import annotations

import grpc
from stepping.tm.v1 import tm_pb2

from tests.integration.helpers import fast_retry, gid, step, tm_stub
from tests.integration.participant import Participant
from tm_service import TmServer

S = tm_pb2
DO = "/h.v1.H/Do"
THEN = "/h.v1.H/Then"


async def test_retried_then_successful_calls_are_each_an_attempt(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail_first[DO] = 2  # UNAVAILABLE twice, then OK
    g = gid()
    async with tm_stub(tm.target) as stub:
        done = await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[
                    step(participant.target, DO, retry_policy=fast_retry()),
                    step(participant.target, THEN),
                ],
                wait_result=True,
            )
        )
        assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
        assert not done.transaction.steps[0].history  # the Submit answer stays light
        got = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        listed = (await stub.ListTransactions(S.ListTransactionsRequest())).transactions
    first, second = got.steps
    assert [(a.number, a.op, a.code) for a in first.history] == [
        (1, S.ATTEMPT_OP_ACTION, grpc.StatusCode.UNAVAILABLE.value[0]),
        (2, S.ATTEMPT_OP_ACTION, grpc.StatusCode.UNAVAILABLE.value[0]),
        (3, S.ATTEMPT_OP_ACTION, 0),
    ]
    assert all(a.error for a in first.history[:2]) and not first.history[2].error
    assert first.last_error == ""  # cleared on success; the errors are in the history
    starts = [a.start_time.ToDatetime() for a in first.history]
    assert starts == sorted(starts)
    assert all(a.duration.ToTimedelta().total_seconds() >= 0 for a in first.history)
    assert [(a.number, a.code) for a in second.history] == [(1, 0)]
    assert second.history[0].start_time.ToDatetime() >= starts[-1]
    [row] = [t for t in listed if t.gid == g]
    assert not row.steps[0].history  # lists stay light
