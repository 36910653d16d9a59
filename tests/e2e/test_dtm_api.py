"""DTM's gRPC API: a client compiled from dtmgimp.proto drives this TM (issue 17).

A real TM (real Postgres, gRPC on port 0) and a real plain-grpcio participant on port
0 with generic raw-bytes handlers, as DTM's branches are.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio
from dtmgimp import dtmgimp_pb2, dtmgimp_pb2_grpc
from google.protobuf import empty_pb2
from stepping.tm.v1 import tm_pb2

from tests.integration.helpers import gid, tm_stub, wait_status
from tests.integration.participant import Call, FakeAnswer
from tm_service.server import TmServer

pytestmark = pytest.mark.asyncio

QP = "/busi.Busi/QueryPrepared"


@dataclass
class Participant:
    """A DTM-style branch server: generic raw-bytes handlers, scripted answers, then OK."""

    calls: list[Call] = field(default_factory=list)
    scripts: dict[str, list[FakeAnswer]] = field(default_factory=lambda: defaultdict(list))
    server: grpc.aio.Server | None = None
    port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def fail(self, method: str, *answers: FakeAnswer) -> None:
        self.scripts[method].extend(answers)

    async def _handle(self, method: str, request: bytes, context: Any) -> bytes:
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.calls.append(Call(method, request, md, time.monotonic()))
        script = self.scripts.get(method)
        if script:
            answer = script.pop(0)
            await context.abort(answer.code, answer.details)
        return b""

    async def start(self) -> Participant:
        participant = self

        class Handler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
            def service(
                self, details: grpc.HandlerCallDetails
            ) -> grpc.RpcMethodHandler[Any, Any] | None:
                method = details.method

                async def handle(request: bytes, context: Any) -> bytes:
                    return await participant._handle(method, request, context)

                return grpc.unary_unary_rpc_method_handler(handle)

        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self


@pytest_asyncio.fixture
async def participant() -> AsyncIterator[Participant]:
    p = await Participant().start()
    yield p
    assert p.server is not None
    await p.server.stop(0)


@pytest_asyncio.fixture
async def dtm(tm: TmServer) -> AsyncIterator[dtmgimp_pb2_grpc.DtmAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tm.port}") as channel:
        yield dtmgimp_pb2_grpc.DtmStub(channel)


def _msg(
    p: Participant, g: str, methods: list[str], payloads: list[bytes], **options: object
) -> dtmgimp_pb2.DtmRequest:
    return dtmgimp_pb2.DtmRequest(
        Gid=g,
        TransType="msg",
        Steps=json.dumps([{"action": f"{p.target}{m}"} for m in methods]),
        BinPayloads=payloads,
        QueryPrepared=f"{p.target}{QP}",
        TransOptions=dtmgimp_pb2.DtmTransOptions(**options),  # type: ignore[arg-type]
    )


async def test_new_gid(dtm: dtmgimp_pb2_grpc.DtmAsyncStub) -> None:
    first = (await dtm.NewGid(empty_pb2.Empty())).Gid
    second = (await dtm.NewGid(empty_pb2.Empty())).Gid
    assert first and second and first != second


async def test_msg_submit_waits_and_calls_in_order_with_dtm_metadata(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, tm: TmServer, participant: Participant
) -> None:
    g = gid()
    req = _msg(
        participant,
        g,
        ["/busi.Busi/TransOut", "/busi.Busi/TransIn"],
        [b"\x01out", b"\x02in"],
        WaitResult=True,
        BranchHeaders={"x-tenant": "t1"},
        RetryInterval=1,
    )
    await dtm.Submit(req, timeout=30)
    calls = participant.calls
    assert [c.method for c in calls] == ["/busi.Busi/TransOut", "/busi.Busi/TransIn"]
    assert [c.payload for c in calls] == [b"\x01out", b"\x02in"]  # verbatim, no wrapping
    for n, c in enumerate(calls, start=1):
        assert c.metadata["dtm-gid"] == g
        assert c.metadata["dtm-trans_type"] == "msg"
        assert c.metadata["dtm-branch_id"] == f"0{n}"
        assert c.metadata["dtm-op"] == "action"
        assert c.metadata["dtm-dtm"]
        assert c.metadata["x-tenant"] == "t1"
        assert not any(k.startswith("stepping-") for k in c.metadata)
    async with tm_stub(f"127.0.0.1:{tm.port}") as stub:  # the same job, our API
        tx = await wait_status(stub, g, tm_pb2.TRANSACTION_STATUS_SUCCEEDED)
        assert tx.mode == tm_pb2.MODE_MESSAGE


async def test_branch_retried_after_unavailable(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, participant: Participant
) -> None:
    participant.fail("/busi.Busi/A", FakeAnswer(grpc.StatusCode.UNAVAILABLE, "down"))
    await dtm.Submit(
        _msg(participant, gid(), ["/busi.Busi/A"], [b"a"], WaitResult=True, RetryInterval=1),
        timeout=30,
    )
    assert len(participant.calls_to("/busi.Busi/A")) == 2


async def test_msg_step_failure_is_retried_not_failed(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, participant: Participant
) -> None:
    participant.fail("/busi.Busi/A", FakeAnswer(grpc.StatusCode.ABORTED, "FAILURE"))
    await dtm.Submit(
        _msg(participant, gid(), ["/busi.Busi/A"], [b"a"], WaitResult=True, RetryInterval=1),
        timeout=30,
    )
    assert len(participant.calls_to("/busi.Busi/A")) == 2


async def test_prepare_backcheck_failure_fails_without_steps(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, tm: TmServer, participant: Participant
) -> None:
    participant.fail(QP, FakeAnswer(grpc.StatusCode.ABORTED, "FAILURE"))
    g = gid()
    await dtm.Prepare(_msg(participant, g, ["/busi.Busi/A"], [b"a"], TimeoutToFail=1))
    async with tm_stub(f"127.0.0.1:{tm.port}") as stub:
        await wait_status(stub, g, tm_pb2.TRANSACTION_STATUS_ABORTED, timeout=30)
    qp = participant.calls_to(QP)
    assert len(qp) == 1 and qp[0].payload == b""
    assert qp[0].metadata["dtm-branch_id"] == "00" and qp[0].metadata["dtm-op"] == "msg"
    assert participant.calls_to("/busi.Busi/A") == []


async def test_prepare_backcheck_ongoing_then_ok_runs_steps_once(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, tm: TmServer, participant: Participant
) -> None:
    participant.fail(QP, FakeAnswer(grpc.StatusCode.FAILED_PRECONDITION, "ONGOING"))
    g = gid()
    await dtm.Prepare(
        _msg(participant, g, ["/busi.Busi/A"], [b"a"], TimeoutToFail=1, RetryInterval=1)
    )
    async with tm_stub(f"127.0.0.1:{tm.port}") as stub:
        await wait_status(stub, g, tm_pb2.TRANSACTION_STATUS_SUCCEEDED, timeout=30)
    assert len(participant.calls_to(QP)) == 2
    assert [c.payload for c in participant.calls_to("/busi.Busi/A")] == [b"a"]


async def test_prepare_then_submit(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, participant: Participant
) -> None:
    g = gid()
    req = _msg(participant, g, ["/busi.Busi/A"], [b"a"], TimeoutToFail=60)
    await dtm.Prepare(req)
    req.TransOptions.WaitResult = True
    await dtm.Submit(req, timeout=30)
    assert [c.payload for c in participant.calls_to("/busi.Busi/A")] == [b"a"]
    assert participant.calls_to(QP) == []


async def test_prepare_then_abort(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, tm: TmServer, participant: Participant
) -> None:
    g = gid()
    await dtm.Prepare(_msg(participant, g, ["/busi.Busi/A"], [b"a"], TimeoutToFail=60))
    await dtm.Abort(dtmgimp_pb2.DtmRequest(Gid=g, TransType="msg", RollbackReason="no stock"))
    async with tm_stub(f"127.0.0.1:{tm.port}") as stub:
        tx = await wait_status(stub, g, tm_pb2.TRANSACTION_STATUS_ABORTED)
    assert "no stock" in tx.error
    assert participant.calls == []


async def test_saga_failure_compensates_in_reverse_and_wait_reports_it(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, tm: TmServer, participant: Participant
) -> None:
    participant.fail("/busi.Busi/TransIn", FakeAnswer(grpc.StatusCode.ABORTED, "FAILURE"))
    g = gid()
    steps = [
        {
            "action": f"{participant.target}/busi.Busi/TransOut",
            "compensate": f"{participant.target}/busi.Busi/TransOutRevert",
        },
        {
            "action": f"{participant.target}/busi.Busi/TransIn",
            "compensate": f"{participant.target}/busi.Busi/TransInRevert",
        },
    ]
    req = dtmgimp_pb2.DtmRequest(
        Gid=g,
        TransType="saga",
        Steps=json.dumps(steps),
        BinPayloads=[b"p1", b"p2"],
        TransOptions=dtmgimp_pb2.DtmTransOptions(WaitResult=True, RetryInterval=1),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dtm.Submit(req, timeout=30)
    assert err.value.code() is grpc.StatusCode.ABORTED
    assert err.value.details() == "FAILURE"
    order = [
        (c.method.rsplit("/", 1)[1], c.metadata["dtm-op"], c.payload) for c in participant.calls
    ]
    # A failed action's compensation also runs (DTM compensates every branch it called).
    assert order == [
        ("TransOut", "action", b"p1"),
        ("TransIn", "action", b"p2"),
        ("TransInRevert", "compensate", b"p2"),
        ("TransOutRevert", "compensate", b"p1"),
    ]
    assert all(c.metadata["dtm-trans_type"] == "saga" for c in participant.calls)
    async with tm_stub(f"127.0.0.1:{tm.port}") as stub:
        await wait_status(stub, g, tm_pb2.TRANSACTION_STATUS_FAILED)


async def test_bad_input_and_unsupported(dtm: dtmgimp_pb2_grpc.DtmAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dtm.Submit(dtmgimp_pb2.DtmRequest(Gid=gid(), TransType="tcc", Steps="[]"))
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await dtm.RegisterBranch(dtmgimp_pb2.DtmBranchRequest(Gid="x"))
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    "tm_settings_overrides", [{"advertise_address": "stepping-tm.payments:36790"}]
)
async def test_dtm_dtm_is_the_advertised_address(
    dtm: dtmgimp_pb2_grpc.DtmAsyncStub, participant: Participant
) -> None:
    await dtm.Submit(_msg(participant, gid(), ["/busi.Busi/A"], [b""], WaitResult=True), timeout=30)
    (call,) = participant.calls
    assert call.metadata["dtm-dtm"] == "stepping-tm.payments:36790"
