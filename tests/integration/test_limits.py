"""Issue 12's limits against a real TM: each original report reproduced, each answered
with a clear status naming the field, and nothing stored."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select
from stepping.tm.v1 import tm_pb2 as S

from tests.conftest import test_settings as settings_for
from tests.integration.helpers import dur, gid, step, tm_stub, wait_status
from tests.integration.participant import Participant
from tests.integration.test_requests import _details, _rows
from tm_service import TmServer
from tm_service._limits import CUT_MARKER
from tm_service.store import PostgresStore
from tm_service.store._schema import transactions as tx_table

M = "/bank.v1.Bank/Debit"
MIB = 1 << 20


@pytest.fixture
def tm_settings_overrides() -> dict[str, Any]:
    return {"min_retry_interval_seconds": 0.1}  # the real default, not the suite's 10 ms


@asynccontextmanager
async def _tm(database_url: str, **overrides: Any) -> AsyncIterator[TmServer]:
    server = TmServer(settings_for(database_url, **overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


def _field(err: grpc.aio.AioRpcError) -> str:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    info, bad = _details(err)
    assert info is not None and info.reason == "ERROR_REASON_INVALID_ARGUMENT"
    assert bad is not None
    field: str = bad.field_violations[0].field
    return field


def _prepare(target: str, g: str, **kw: Any) -> S.PrepareRequest:
    return S.PrepareRequest(
        gid=g, steps=[step(target, M, b"x")], query_prepared=S.Endpoint(target=target), **kw
    )


async def test_a_job_of_64_steps_of_1_mib_is_refused_before_it_is_read(
    tm: TmServer, database_url: str
) -> None:
    steps = [step("127.0.0.1:5555", M, b"x" * MIB) for _ in range(64)]
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Submit(S.SubmitRequest(gid=gid(), steps=steps))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await _rows(database_url) == (0, 0)


async def test_a_job_whose_payloads_total_more_than_the_limit_names_steps(
    tm: TmServer, database_url: str
) -> None:
    steps = [step("127.0.0.1:5555", M, b"x" * MIB) for _ in range(5)]  # 5 MiB < 8 MiB request
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Submit(S.SubmitRequest(gid=gid(), steps=steps))
        assert _field(err.value) == "steps"
        assert "4194304" in (err.value.details() or "")
        four = [step("127.0.0.1:5555", M, b"x" * (MIB - 64)) for _ in range(4)]
        await stub.Prepare(
            S.PrepareRequest(
                gid=gid(),
                steps=four,
                query_prepared=S.Endpoint(target="127.0.0.1:5555"),
                options=S.TransactionOptions(check_prepared_after=dur(60)),
            )
        )
    assert await _rows(database_url) == (1, 4)  # at the limit: accepted


async def test_a_50_mib_abort_reason_is_refused_and_a_long_one_is_stored_cut(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(_prepare(participant.target, g))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Abort(S.AbortRequest(gid=g, reason="r" * (50 * MIB)))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        assert tx.status == S.TRANSACTION_STATUS_PREPARED and tx.error == ""

        aborted = (await stub.Abort(S.AbortRequest(gid=g, reason="r" * MIB))).transaction
        assert aborted.status == S.TRANSACTION_STATUS_ABORTED
        assert aborted.error.endswith(CUT_MARKER) and len(aborted.error.encode()) <= 4096
        listed = await stub.ListTransactions(S.ListTransactionsRequest())
        assert [t.error for t in listed.transactions] == [aborted.error]


NUL_CASES: list[tuple[str, str]] = [
    ("steps[0].name", "name"),
    ("steps[0].action.target", "target"),
    ("steps[0].headers['x-tenant']", "header"),
    ("gid", "gid"),
]


def _with_nul(where: str) -> S.SubmitRequest:
    g, name, target, headers = gid(), "debit", "127.0.0.1:5555", {"x-tenant": "acme"}
    if where == "name":
        name = "deb\x00it"
    elif where == "target":
        target = "unix:/tmp/a\x00b"
    elif where == "header":
        headers = {"x-tenant": "ac\x00me"}
    else:
        g = "g\x00"
    return S.SubmitRequest(gid=g, steps=[step(target, M, b"p", name=name, headers=headers)])


@pytest.mark.parametrize(("field", "where"), NUL_CASES, ids=[c[1] for c in NUL_CASES])
async def test_a_nul_byte_in_a_text_field_is_invalid_argument_naming_it(
    tm: TmServer, database_url: str, field: str, where: str
) -> None:
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Submit(_with_nul(where))
    assert _field(err.value) == field
    assert await _rows(database_url) == (0, 0)


async def test_control_characters_in_database_and_abort_reason_are_refused(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Prepare(_prepare(participant.target, g, database="db\x1b[31m"))
        assert _field(err.value) == "database"
        assert await _rows(database_url) == (0, 0)
        await stub.Prepare(_prepare(participant.target, g))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Abort(S.AbortRequest(gid=g, reason="because\x00"))
        assert _field(err.value) == "reason"
        tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        assert tx.status == S.TRANSACTION_STATUS_PREPARED
        done = await stub.Abort(S.AbortRequest(gid=g, reason="line one\n\tline two"))
        assert done.transaction.error == "line one\n\tline two"


async def test_a_step_with_10k_headers_is_refused_and_so_are_big_ones(
    tm: TmServer, database_url: str
) -> None:
    many = {f"x-h{i}": "v" for i in range(10_000)}
    big = {"x-a": "a" * 3000, "x-b": "b" * 3000}
    async with tm_stub(tm.target) as stub:
        for headers in (many, big):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Submit(
                    S.SubmitRequest(
                        gid=gid(),
                        steps=[
                            step("127.0.0.1:5555", M),
                            step("127.0.0.1:5555", M, headers=headers),
                        ],
                    )
                )
            assert _field(err.value) == "steps[1].headers"
    assert await _rows(database_url) == (0, 0)


async def test_a_retry_interval_below_the_minimum_is_refused_naming_the_field(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    fast = S.RetryPolicy(initial_interval=dur(0.05))
    async with tm_stub(tm.target) as stub:
        for req, field in (
            (
                S.SubmitRequest(gid=gid(), steps=[step(participant.target, M, retry_policy=fast)]),
                "steps[0].retry_policy.initial_interval",
            ),
            (
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step(participant.target, M)],
                    options=S.TransactionOptions(retry_policy=fast),
                ),
                "options.retry_policy.initial_interval",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Submit(req)
            assert _field(err.value) == field
            assert "at least 100ms" in (err.value.details() or "")
        assert await _rows(database_url) == (0, 0)
        ok = S.RetryPolicy(initial_interval=dur(0.1))
        done = await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[step(participant.target, M, retry_policy=ok)], wait_result=True
            )
        )
        assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED


async def test_a_response_over_the_limit_fails_the_step_for_good(
    tm: TmServer, participant: Participant
) -> None:
    participant.responses[M] = b"x" * (2 * MIB)
    policy = S.RetryPolicy(initial_interval=dur(0.1), maximum_interval=dur(0.1))
    async with tm_stub(tm.target) as stub:
        done = await stub.Submit(
            S.SubmitRequest(
                gid=gid(),
                steps=[step(participant.target, M, retry_policy=policy)],
                wait_result=True,
                wait_timeout=dur(5),
            )
        )
    tx = done.transaction
    assert tx.status == S.TRANSACTION_STATUS_FAILED
    assert tx.steps[0].status == S.STEP_STATUS_FAILED and tx.steps[0].attempts == 1
    assert "larger than the TM's limit of 1048576 bytes" in tx.steps[0].last_error
    assert len(participant.calls_to(M)) == 1


MALFORMED = [
    "/stepping.tm.v1.TransactionManagerService/Submit",
    "/stepping.tm.v1.TransactionManagerService/Abort",
    "/stepping.tm.v1.TransactionManagerService/GetTransaction",
    "/grpc.health.v1.Health/Check",
]


async def test_random_bytes_to_any_method_are_invalid_argument_logged_once(
    tm: TmServer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with grpc.aio.insecure_channel(tm.target) as channel:
            for n in range(5):
                for method in MALFORMED:
                    call = channel.unary_unary(method, None, None)
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call(b"\xff\xff\xff\xff\x0f" + os.urandom(64 + n))
                    assert _field(err.value) == "request", method
            # The server still serves well-formed requests.
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    malformed = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(malformed) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert await _rows(database_url) == (0, 0)


async def test_past_max_active_jobs_a_submitted_job_waits_in_the_database(
    database_url: str, participant: Participant
) -> None:
    participant.delays[M] = 0.5
    async with _tm(database_url, max_active_jobs=1) as tm, tm_stub(tm.target) as stub:
        first, second = gid(), gid()
        await stub.Submit(S.SubmitRequest(gid=first, steps=[step(participant.target, M)]))
        answer = await stub.Submit(S.SubmitRequest(gid=second, steps=[step(participant.target, M)]))
        assert answer.transaction.status == S.TRANSACTION_STATUS_SUBMITTED
        store = PostgresStore.from_url(database_url, pool_size=1)
        try:
            async with store.engine.connect() as conn:
                owner = (
                    await conn.execute(
                        select(tx_table.c.lease_owner).where(tx_table.c.gid == second)
                    )
                ).scalar_one()
        finally:
            await store.close()
        assert owner is None  # released: any replica's sweeper may take it
        for g in (first, second):
            await wait_status(stub, g, S.TRANSACTION_STATUS_SUCCEEDED)
    calls = participant.calls_to(M)
    assert [c.metadata["stepping-gid"] for c in calls] == [first, second]
    assert calls[1].at - calls[0].at >= 0.45  # one job at a time


async def test_credential_headers_are_sent_but_never_returned_or_logged(
    tm: TmServer, participant: Participant, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-bearer-value"
    headers = {"authorization": f"Bearer {secret}", "x-api-key": secret, "x-tenant": "acme"}
    g = gid()
    with caplog.at_level(logging.DEBUG):
        async with tm_stub(tm.target) as stub:
            participant.fail_first[M] = 1  # a failed attempt is logged too
            await stub.Submit(
                S.SubmitRequest(
                    gid=g,
                    steps=[
                        step(
                            participant.target,
                            M,
                            headers=headers,
                            retry_policy=S.RetryPolicy(initial_interval=dur(0.1)),
                        )
                    ],
                    wait_result=True,
                )
            )
            got = await stub.GetTransaction(S.GetTransactionRequest(gid=g))
            listed = await stub.ListTransactions(S.ListTransactionsRequest())
    assert participant.calls_to(M)[-1].metadata["authorization"] == f"Bearer {secret}"
    assert got.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
    for message in (got, listed):
        assert secret.encode() not in message.SerializeToString()
    assert secret not in caplog.text
