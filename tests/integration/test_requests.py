"""Idempotency on gid, conflicts with machine-readable reasons, and input validation."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select
from stepping.tm.v1 import tm_pb2 as S

from tests.integration.helpers import dur, gid, step, tm_stub
from tests.integration.participant import Participant
from tm_service import TmServer
from tm_service.store import PostgresStore
from tm_service.store._schema import steps as steps_table
from tm_service.store._schema import transactions as tx_table

T = "127.0.0.1:5555"
M = "/a.v1.A/Do"


def _details(
    err: grpc.aio.AioRpcError,
) -> tuple[error_details_pb2.ErrorInfo | None, error_details_pb2.BadRequest | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    info = bad = None
    assert status is not None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
    return info, bad


async def _rows(database_url: str) -> tuple[int, int]:
    store = PostgresStore.from_url(database_url, pool_size=1)
    try:
        async with store.engine.connect() as conn:
            n_tx = (await conn.execute(select(func.count()).select_from(tx_table))).scalar_one()
            n_st = (await conn.execute(select(func.count()).select_from(steps_table))).scalar_one()
    finally:
        await store.close()
    return n_tx, n_st


async def test_new_gid_is_unique(tm: TmServer) -> None:
    async with tm_stub(tm.target) as stub:
        gids = {(await stub.NewGid(S.NewGidRequest())).gid for _ in range(50)}
    assert len(gids) == 50


async def test_repeated_requests_return_the_current_state(
    tm: TmServer, participant: Participant
) -> None:
    g = gid()
    req = S.PrepareRequest(
        gid=g,
        steps=[step(participant.target, M, b"x")],
        query_prepared=S.Endpoint(target=participant.target),
    )
    async with tm_stub(tm.target) as stub:
        first = (await stub.Prepare(req)).transaction
        second = (await stub.Prepare(req)).transaction
        assert second.status == S.TRANSACTION_STATUS_PREPARED
        assert second.create_time == first.create_time
        done = (await stub.Submit(S.SubmitRequest(gid=g, wait_result=True))).transaction
        assert done.status == S.TRANSACTION_STATUS_SUCCEEDED
        again = (await stub.Submit(S.SubmitRequest(gid=g))).transaction
        assert again.status == S.TRANSACTION_STATUS_SUCCEEDED
        prepared_again = (await stub.Prepare(req)).transaction
        assert prepared_again.status == S.TRANSACTION_STATUS_SUCCEEDED
        # A plain Submit with steps repeated is idempotent too.
        g2 = gid()
        sub = S.SubmitRequest(gid=g2, steps=[step(participant.target, M, b"y")], wait_result=True)
        assert (await stub.Submit(sub)).transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
        assert (await stub.Submit(sub)).transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
    assert len(participant.calls) == 2  # one per job, never re-run by a repeat


async def test_conflicting_requests_get_clear_reasons(
    tm: TmServer, participant: Participant
) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(
            S.PrepareRequest(
                gid=g,
                steps=[step(participant.target, M, b"x")],
                query_prepared=S.Endpoint(target=participant.target),
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Prepare(
                S.PrepareRequest(
                    gid=g,
                    steps=[step(participant.target, M, b"other")],
                    query_prepared=S.Endpoint(target=participant.target),
                )
            )
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        info, _ = _details(err.value)
        assert info is not None
        assert info.reason == "ERROR_REASON_GID_CONFLICT"
        assert info.domain == "stepping.tm.v1"
        assert info.metadata["gid"] == g
        assert info.metadata["status"] == "TRANSACTION_STATUS_PREPARED"

        await stub.Submit(S.SubmitRequest(gid=g, wait_result=True))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Abort(S.AbortRequest(gid=g))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info, _ = _details(err.value)
        assert info is not None and info.reason == "ERROR_REASON_INVALID_STATE"
        assert info.metadata["status"] == "TRANSACTION_STATUS_SUCCEEDED"

        for call in (
            stub.Abort(S.AbortRequest(gid="nope")),
            stub.GetTransaction(S.GetTransactionRequest(gid="nope")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            info, _ = _details(err.value)
            assert info is not None and info.reason == "ERROR_REASON_TRANSACTION_NOT_FOUND"


def _ok_step(**kw: Any) -> S.Step:
    return step(T, M, b"p", **kw)


INVALID: list[tuple[str, str, S.SubmitRequest]] = [
    ("empty gid", "gid", S.SubmitRequest(gid="", steps=[_ok_step()])),
    ("long gid", "gid", S.SubmitRequest(gid="g" * 129, steps=[_ok_step()])),
    ("bad gid chars", "gid", S.SubmitRequest(gid="a b/c", steps=[_ok_step()])),
    ("no steps", "steps", S.SubmitRequest(gid="no-steps")),
    ("no target", "steps[0].action.target", S.SubmitRequest(gid="g1", steps=[step("", M)])),
    (
        "bad target",
        "steps[0].action.target",
        S.SubmitRequest(gid="g1", steps=[step("localhost", M)]),
    ),
    ("bad port", "steps[0].action.target", S.SubmitRequest(gid="g1", steps=[step("h:99999", M)])),
    (
        "bad method",
        "steps[1].action.method",
        S.SubmitRequest(gid="g1", steps=[_ok_step(), step(T, "Do")]),
    ),
    ("no action", "steps[0].action", S.SubmitRequest(gid="g1", steps=[S.Step(name="x")])),
    (
        "negative timeout",
        "steps[0].timeout",
        S.SubmitRequest(gid="g1", steps=[_ok_step(timeout=dur(-1))]),
    ),
    (
        "negative step_timeout",
        "options.step_timeout",
        S.SubmitRequest(
            gid="g1", steps=[_ok_step()], options=S.TransactionOptions(step_timeout=dur(-0.5))
        ),
    ),
    (
        "negative retry interval",
        "options.retry_policy.initial_interval",
        S.SubmitRequest(
            gid="g1",
            steps=[_ok_step()],
            options=S.TransactionOptions(retry_policy=S.RetryPolicy(initial_interval=dur(-2))),
        ),
    ),
    (
        "negative attempts",
        "steps[0].retry_policy.maximum_attempts",
        S.SubmitRequest(
            gid="g1", steps=[_ok_step(retry_policy=S.RetryPolicy(maximum_attempts=-1))]
        ),
    ),
    (
        "negative wait",
        "wait_timeout",
        S.SubmitRequest(gid="g1", steps=[_ok_step()], wait_timeout=dur(-1)),
    ),
    (
        "big payload",
        "steps[0].payload",
        S.SubmitRequest(gid="g1", steps=[step(T, M, b"x" * ((1 << 20) + 1))]),
    ),
    ("too many steps", "steps", S.SubmitRequest(gid="g1", steps=[_ok_step()] * 101)),
    (
        "reserved header",
        "steps[0].headers['stepping-gid']",
        S.SubmitRequest(gid="g1", steps=[_ok_step(headers={"stepping-gid": "x"})]),
    ),
    (
        "compensation in message mode",
        "steps[0].compensation",
        S.SubmitRequest(gid="g1", steps=[_ok_step(compensation=S.Endpoint(target=T, method=M))]),
    ),
]


@pytest.mark.parametrize(("label", "field", "request_"), INVALID, ids=[i[0] for i in INVALID])
async def test_invalid_input_names_the_field_and_stores_nothing(
    tm: TmServer, database_url: str, label: str, field: str, request_: S.SubmitRequest
) -> None:
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Submit(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    info, bad = _details(err.value)
    assert bad is not None and bad.field_violations[0].field == field
    assert info is not None and info.reason == "ERROR_REASON_INVALID_ARGUMENT"
    assert (err.value.details() or "").startswith(field)
    assert await _rows(database_url) == (0, 0)


async def test_prepare_requires_query_prepared_and_stores_nothing(
    tm: TmServer, database_url: str
) -> None:
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Prepare(S.PrepareRequest(gid="g1", steps=[_ok_step()]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        _, bad = _details(err.value)
        assert bad is not None and bad.field_violations[0].field == "query_prepared"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Prepare(S.PrepareRequest(gid="g1", query_prepared=S.Endpoint(target=T)))
        _, bad = _details(err.value)
        assert bad is not None and bad.field_violations[0].field == "steps"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Prepare(
                S.PrepareRequest(
                    gid="g1", steps=[_ok_step()], query_prepared=S.Endpoint(target="nohost")
                )
            )
        _, bad = _details(err.value)
        assert bad is not None and bad.field_violations[0].field == "query_prepared.target"
    assert await _rows(database_url) == (0, 0)


async def test_list_filters_by_status_and_pages(tm: TmServer, participant: Participant) -> None:
    async with tm_stub(tm.target) as stub:
        done = []
        for i in range(5):
            g = f"list-{i}"
            await stub.Submit(
                S.SubmitRequest(gid=g, steps=[step(participant.target, M)], wait_result=True)
            )
            done.append(g)
        await stub.Prepare(
            S.PrepareRequest(
                gid="list-prepared",
                steps=[step(participant.target, M)],
                query_prepared=S.Endpoint(target=participant.target),
                options=S.TransactionOptions(check_prepared_after=dur(60)),
            )
        )
        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListTransactions(
                S.ListTransactionsRequest(
                    statuses=[S.TRANSACTION_STATUS_SUCCEEDED], page_size=2, page_token=token
                )
            )
            assert len(page.transactions) <= 2
            seen += [t.gid for t in page.transactions]
            token = page.next_page_token
            if not token:
                break
        assert seen == list(reversed(done))  # newest first, each once, filter applied
        everything = await stub.ListTransactions(S.ListTransactionsRequest())
        assert {t.gid for t in everything.transactions} == {*done, "list-prepared"}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTransactions(S.ListTransactionsRequest(page_token="garbage!"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
