"""The TM's calls to participants: which targets it accepts and dials, what a failed
dial tells the client, and the bounded channel cache. Real TMs and participants on
port 0."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select
from stepping.contract import CallInfo
from stepping.tm.v1 import tm_pb2 as S

from tests import conftest
from tests.integration.helpers import fast_retry, gid, step, tm_stub
from tests.integration.participant import QP_METHOD, Participant
from tm_service import TmServer
from tm_service.domain import Endpoint
from tm_service.processing import GrpcTransport
from tm_service.store import PostgresStore
from tm_service.store._schema import transactions as tx_table
from tm_service.targets import IPAddress, TargetPolicy

M = "/bank.v1.Bank/Debit"


@asynccontextmanager
async def _tm(database_url: str, transport: Any = None, **settings: Any) -> AsyncIterator[TmServer]:
    server = TmServer(conftest.test_settings(database_url, **settings), transport=transport)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


def _field(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            field: str = bad.field_violations[0].field
            return field
    raise AssertionError("no BadRequest detail")


async def _stored_jobs(database_url: str) -> int:
    store = PostgresStore.from_url(database_url, pool_size=1)
    try:
        async with store.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(tx_table)) or 0)
    finally:
        await store.close()


def _saga(action: str, compensation: str) -> S.Step:
    s = step(action, M, b"p")
    s.compensation.CopyFrom(S.Endpoint(target=compensation, method=M))
    return s


async def _refused(stub: Any, request: Any, rpc: str = "Submit", **kw: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, rpc)(request, **kw)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "is not allowed" in (err.value.details() or "")
    return _field(err.value)


async def test_the_allow_list_refuses_each_target_field_and_stores_nothing(
    database_url: str, participant: Participant
) -> None:
    ok = participant.target  # 127.0.0.1:<port>: allowed by the CIDR entry
    allowed = f"127.0.0.1/32:{participant.port},orders:*"
    async with _tm(database_url, allowed_targets=allowed) as tm, tm_stub(tm.target) as stub:
        saga = S.TransactionOptions(mode=S.MODE_SAGA)
        cases = [
            (
                S.SubmitRequest(gid=gid(), steps=[step(ok, M), step("evil:1", M)]),
                "Submit",
                "steps[1].action.target",
            ),
            (
                S.SubmitRequest(gid=gid(), steps=[_saga(ok, "127.0.0.1:1")], options=saga),
                "Submit",
                "steps[0].compensation.target",
            ),
            (
                S.PrepareRequest(
                    gid=gid(), steps=[step(ok, M)], query_prepared=S.Endpoint(target="10.0.0.1:1")
                ),
                "Prepare",
                "query_prepared.target",
            ),
            (
                S.SubmitRequest(gid=gid(), steps=[step("orders.evil.com:1", M)]),
                "Submit",
                "steps[0].action.target",
            ),
        ]
        for request, rpc, field in cases:
            assert await _refused(stub, request, rpc) == field
        assert await _stored_jobs(database_url) == 0
        # The allowed path: the CIDR entry with its port, and a name pattern.
        done = await stub.Submit(
            S.SubmitRequest(gid=gid(), steps=[_saga(ok, ok)], options=saga, wait_result=True)
        )
        assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
        prepared = await stub.Prepare(
            S.PrepareRequest(
                gid=gid(), steps=[step(ok, M)], query_prepared=S.Endpoint(target="orders:50051")
            )
        )
        assert prepared.transaction.status == S.TRANSACTION_STATUS_PREPARED


async def test_without_a_list_metadata_unix_and_the_tm_itself_are_refused(
    tm: TmServer, database_url: str
) -> None:
    async with tm_stub(tm.target) as stub:
        for target in (
            "169.254.169.254:80",
            "unix:/x",
            tm.target,
            f"localhost:{tm.port}",
            "dns://8.8.8.8/bank:1",
        ):
            request = S.SubmitRequest(gid=gid(), steps=[step(target, M)])
            assert await _refused(stub, request) == "steps[0].action.target", target
    assert await _stored_jobs(database_url) == 0


async def test_a_request_carrying_the_tms_own_step_metadata_is_refused(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    own = tuple(CallInfo(gid="outer", op="action", step_index=0).metadata())
    async with tm_stub(tm.target) as stub:
        for rpc, request in (
            ("Submit", S.SubmitRequest(gid=gid(), steps=[step(participant.target, M)])),
            (
                "Prepare",
                S.PrepareRequest(
                    gid=gid(),
                    steps=[step(participant.target, M)],
                    query_prepared=S.Endpoint(target=participant.target),
                ),
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await getattr(stub, rpc)(request, metadata=own)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert _field(err.value) == "metadata.stepping-op"
    assert await _stored_jobs(database_url) == 0
    assert participant.calls == []


def _resolver(table: dict[str, str]) -> Any:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(table[host])]

    return resolve


async def test_a_name_resolving_to_a_denied_address_fails_the_step_for_good(
    database_url: str, participant: Participant
) -> None:
    names = {"metadata.test": "169.254.169.254", "bank.test": "127.0.0.1"}
    transport = GrpcTransport(resolver=_resolver(names))
    async with _tm(database_url, transport) as tm, tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step("metadata.test:80", M)],
                    options=S.TransactionOptions(retry_policy=fast_retry()),  # unlimited
                    wait_result=True,
                )
            )
        ).transaction
        assert tx.status == S.TRANSACTION_STATUS_FAILED
        assert tx.steps[0].attempts == 1
        assert tx.steps[0].last_error.startswith("PERMISSION_DENIED: target refused: link-local")
        # A name resolving to an allowed address is dialled (on the checked address).
        ok = await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[step(f"bank.test:{participant.port}", M)], wait_result=True
            )
        )
        assert ok.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
        assert len(participant.calls_to(M)) == 1


async def test_resolved_addresses_outside_the_listed_cidrs_are_refused(
    participant: Participant,
) -> None:
    transport = GrpcTransport(
        targets=TargetPolicy("*.test:*,10.0.0.0/8"),
        resolver=_resolver({"bank.test": "127.0.0.1"}),
    )
    try:
        result = await transport.call(
            Endpoint(f"bank.test:{participant.port}", M), b"", info=_info(), timeout=2
        )
        assert result.code is grpc.StatusCode.PERMISSION_DENIED and result.permanent
        assert result.details == "target refused: the address is not in the allowed targets"
        assert participant.calls == []
    finally:
        await transport.close()


def _info() -> CallInfo:
    return CallInfo(gid="g-1", op="action", step_index=0)


async def test_a_failed_dial_reads_the_same_whatever_the_port_the_detail_is_logged(
    tm: TmServer, participant: Participant, caplog: pytest.LogCaptureFixture
) -> None:
    await participant.stop()  # nothing listens on its port now
    closed = participant.target
    caplog.set_level(logging.INFO, logger="tm_service.processing._transport")
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step(closed, M)],
                    options=S.TransactionOptions(retry_policy=fast_retry(attempts=2)),
                    wait_result=True,
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_FAILED
    assert (
        tx.steps[0].last_error == "gave up after 2 attempts: UNAVAILABLE: participant unreachable"
    )
    assert "Connection refused" not in tx.error
    assert any("Connection refused" in r.getMessage() for r in caplog.records)


async def test_a_participants_own_unavailable_keeps_its_text(participant: Participant) -> None:
    from tests.integration.participant import FakeAnswer

    participant.fail(
        M, FakeAnswer(grpc.StatusCode.OK), FakeAnswer(grpc.StatusCode.UNAVAILABLE, "db down")
    )
    transport = GrpcTransport()
    try:
        ep = Endpoint(participant.target, M)
        # The first answer connects the channel; the second is the participant's own.
        await transport.call(ep, b"", info=_info(), timeout=2)
        result = await transport.call(ep, b"", info=_info(), timeout=2)
        assert result.error_text == "UNAVAILABLE: db down"
    finally:
        await transport.close()


async def test_the_channel_cache_is_bounded_and_closes_idle_channels() -> None:
    participants = [await Participant().start() for _ in range(3)]
    now = [0.0]
    transport = GrpcTransport(max_channels=2, idle_seconds=60, clock=lambda: now[0])
    try:
        for p in participants:
            result = await transport.call(Endpoint(p.target, M), b"", info=_info(), timeout=2)
            assert result.code is grpc.StatusCode.OK
            now[0] += 1
        assert transport.open_channels == 2  # the least recently used one was closed
        now[0] += 58.5
        assert transport.close_idle() == 1  # the channel used at t=1 is now 60 s idle
        assert transport.open_channels == 1
        now[0] += 1
        assert transport.close_idle() == 1 and transport.open_channels == 0
        # A closed channel is simply opened again.
        again = await transport.call(
            Endpoint(participants[0].target, M), b"", info=_info(), timeout=2
        )
        assert again.code is grpc.StatusCode.OK
    finally:
        await transport.close()
        for p in participants:
            await p.stop()


async def test_the_back_check_to_a_refused_name_is_asked_again_not_dropped(
    database_url: str,
) -> None:
    transport = GrpcTransport(resolver=_resolver({"orders.test": "169.254.169.254"}))
    settings = {"default_check_prepared_after_seconds": 0.0}
    async with _tm(database_url, transport, **settings) as tm, tm_stub(tm.target) as stub:
        g = gid()
        await stub.Prepare(
            S.PrepareRequest(
                gid=g,
                steps=[step("127.0.0.1:1", M)],
                query_prepared=S.Endpoint(target="orders.test:1", method=QP_METHOD),
                options=S.TransactionOptions(retry_policy=fast_retry()),
            )
        )
        for _ in range(50):
            tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
            if tx.error:
                break
            await asyncio.sleep(0.1)
        assert tx.status == S.TRANSACTION_STATUS_PREPARED
        assert tx.error.startswith("QueryPrepared: PERMISSION_DENIED: target refused")


async def test_a_name_that_does_not_resolve_or_hangs_is_unreachable() -> None:
    async def fails(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    async def hangs(host: str, port: int) -> list[IPAddress]:
        await asyncio.sleep(60)
        return []

    for resolver in (fails, hangs):
        transport = GrpcTransport(resolver=resolver)
        try:
            result = await transport.call(
                Endpoint("bank.test:1", M), b"", info=_info(), timeout=0.5
            )
            assert result.error_text == "UNAVAILABLE: participant unreachable"
            assert not result.permanent  # retried: DNS may come back
        finally:
            await transport.close()
