"""The job-control client methods against a minimal TM servicer in this test (request
and response shapes only; the real TM's behaviour is in test_job_control_client.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import pytest_asyncio
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from participant_sdk import TmClient
from participant_sdk.client import JobStatus
from participant_sdk.errors import InvalidState

DONE = tm_pb2.TRANSACTION_STATUS_SUCCEEDED


def _tx(gid: str, status: int = DONE, **fields: Any) -> tm_pb2.Transaction:
    return tm_pb2.Transaction(gid=gid, status=status, **fields)  # type: ignore[arg-type]


class FakeTm(tm_pb2_grpc.TransactionManagerServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def NewGid(self, request: Any, context: Any) -> tm_pb2.NewGidResponse:
        return tm_pb2.NewGidResponse(gid="g")

    async def Cancel(self, request: Any, context: Any) -> tm_pb2.CancelResponse:
        self.requests.append(request)
        return tm_pb2.CancelResponse(
            transaction=_tx(
                request.gid, tm_pb2.TRANSACTION_STATUS_ABORTED, cancel_reason=request.reason
            )
        )

    async def Resume(self, request: Any, context: Any) -> tm_pb2.ResumeResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not failed")
        raise AssertionError("abort raises")

    async def CountTransactions(
        self, request: Any, context: Any
    ) -> tm_pb2.CountTransactionsResponse:
        self.requests.append(request)
        return tm_pb2.CountTransactionsResponse(
            counts=[tm_pb2.StatusCount(status=DONE, count=3)], total=3
        )

    async def ListTransactions(self, request: Any, context: Any) -> tm_pb2.ListTransactionsResponse:
        self.requests.append(request)
        tx = _tx("a1", tags={"team": "pay"}, needs_attention="stuck")
        step = tx.steps.add(index=0, name="Debit")
        step.history.add(number=1, op=tm_pb2.ATTEMPT_OP_ACTION, code=14, error="down")
        return tm_pb2.ListTransactionsResponse(transactions=[tx], next_page_token="next")

    async def WatchTransaction(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for status in (tm_pb2.TRANSACTION_STATUS_SUBMITTED, DONE):
            yield tm_pb2.WatchTransactionResponse(transaction=_tx(request.gid, status))


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeTm, TmClient]]:
    servicer = FakeTm()  # type: ignore[abstract]  # the RPCs these tests do not use
    server = grpc.aio.server()
    tm_pb2_grpc.add_TransactionManagerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with TmClient.connect(f"127.0.0.1:{port}", timeout=10) as client:
        yield servicer, client
    await server.stop(None)


async def test_cancel_resume_count(fake: tuple[FakeTm, TmClient]) -> None:
    servicer, client = fake
    state = await client.cancel("g1", reason="operator")
    assert (state.status, state.cancel_reason) == (JobStatus.ABORTED, "operator")
    assert servicer.requests[-1] == tm_pb2.CancelRequest(gid="g1", reason="operator")
    with pytest.raises(InvalidState):  # NotResumable when the TM names the reason
        await client.resume("g1")
    assert await client.count_jobs(tags={"team": "pay"}, gid_prefix="a") == {JobStatus.SUCCEEDED: 3}
    assert servicer.requests[-1].filter == tm_pb2.TransactionFilter(
        tags={"team": "pay"}, gid_prefix="a"
    )


async def test_list_with_filters_and_watch(fake: tuple[FakeTm, TmClient]) -> None:
    servicer, client = fake
    after = datetime(2026, 12, 1, tzinfo=UTC)
    jobs, token = await client.list_jobs(
        statuses=[JobStatus.FAILED],
        tags={"team": "pay"},
        created_after=after,
        target="bank:1",
        method="/bank.v1.Bank/Debit",
        error_contains="down",
        page_size=10,
    )
    sent = servicer.requests[-1]
    assert list(sent.statuses) == [tm_pb2.TRANSACTION_STATUS_FAILED] and sent.page_size == 10
    assert sent.filter.created_after.ToDatetime(tzinfo=UTC) == after
    assert (sent.filter.target, sent.filter.method, sent.filter.error_contains) == (
        "bank:1",
        "/bank.v1.Bank/Debit",
        "down",
    )
    assert token == "next"
    (job,) = jobs
    assert job.tags == {"team": "pay"} and job.needs_attention == "stuck"
    (attempt,) = job.steps[0].history
    assert (attempt.number, attempt.op, attempt.code, attempt.error) == (1, "action", 14, "down")
    assert [s.status async for s in client.watch("w1")] == [
        JobStatus.SUBMITTED,
        JobStatus.SUCCEEDED,
    ]
