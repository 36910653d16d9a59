"""The wire contract (stepping.contract): what goes on the wire, and that both sides agree."""

from __future__ import annotations

import typing
from importlib import metadata
from types import SimpleNamespace
from typing import Any

from stepping import contract
from stepping.contract import CallInfo
from stepping.participant.v1 import participant_pb2, participant_pb2_grpc
from stepping.tm.v1 import tm_pb2

import tm_service
from participant_sdk._handler import parse_step_info
from participant_sdk._info import Op as SdkOp
from participant_sdk._rpc_errors import _BY_REASON, TM_ERROR_DOMAIN
from tm_service import errors
from tm_service.api import DOMAIN
from tm_service.domain import Endpoint, RetryPolicy, StepSpec
from tm_service.processing._steps import Op, step_call

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}


def _spec(headers: dict[str, str]) -> StepSpec:
    return StepSpec(
        index=2,
        name="Credit",
        action=Endpoint("bank:1", "/bank.v1.Bank/Credit"),
        compensation=Endpoint("bank:1", "/bank.v1.Bank/Credit"),
        payload=b"",
        headers=headers,
        retry_policy=RetryPolicy(1.0, 2.0, 60.0, 0),
        timeout=5.0,
    )


def _step_info(op: Op = Op.COMPENSATE) -> CallInfo:
    # The TM's own builder; it reads only the job's gid and trace context.
    job: Any = SimpleNamespace(gid="g-1", trace_context={**TRACE, "baggage": "dropped"})
    return step_call(job, _spec({"x-tenant": "t1", "x-region": "eu"}), op, 4)


def test_a_step_call_sends_the_step_keys_then_trace_context_then_headers() -> None:
    assert _step_info().metadata() == [
        ("stepping-gid", "g-1"),
        ("stepping-step-index", "2"),
        ("stepping-step-name", "Credit"),
        ("stepping-op", "compensate"),
        ("stepping-attempt", "4"),
        ("traceparent", TRACEPARENT),
        ("tracestate", "vendor=1"),
        ("x-tenant", "t1"),
        ("x-region", "eu"),
    ]


def test_a_back_check_sends_the_gid_the_op_and_the_trace_context_only() -> None:
    info = CallInfo(gid="g-1", op=contract.OP_QUERY_PREPARED, trace_context=TRACE)
    assert info.metadata() == [
        ("stepping-gid", "g-1"),
        ("stepping-op", "query_prepared"),
        ("traceparent", TRACEPARENT),
        ("tracestate", "vendor=1"),
    ]
    assert CallInfo(gid="g-2", op=contract.OP_QUERY_PREPARED).metadata() == [
        ("stepping-gid", "g-2"),
        ("stepping-op", "query_prepared"),
    ]


def test_the_sdk_reads_back_what_the_tm_sends() -> None:
    for op in Op:
        sent = _step_info(op)
        # gRPC adds its own keys on the way; the SDK must not take them for headers.
        got = parse_step_info([*sent.metadata(), ("user-agent", "grpc-python")], None)
        assert (got.gid, got.step_index, got.step_name, got.op, got.attempt) == (
            sent.gid,
            sent.step_index,
            sent.step_name,
            sent.op,
            sent.attempt,
        )
        assert got.headers == {**sent.headers, **TRACE}
        assert got.traceparent == TRACEPARENT


def test_op_values_agree_on_both_sides() -> None:
    assert [op.value for op in Op] == [contract.OP_ACTION, contract.OP_COMPENSATE]
    assert typing.get_args(SdkOp) == (contract.OP_ACTION, contract.OP_COMPENSATE)


def test_error_reasons_are_the_proto_enum_names() -> None:
    names = set(tm_pb2.ErrorReason.keys())
    reasons = {getattr(contract, n) for n in contract.__all__ if n.startswith("REASON_")}
    assert reasons == names
    tm_reasons = {errors.TmError.reason} | {c.reason for c in errors.TmError.__subclasses__()}
    assert tm_reasons == names
    # The SDK maps every reason the TM can send (all but UNSPECIFIED) to its own error.
    assert set(_BY_REASON) == names - {"ERROR_REASON_UNSPECIFIED"}


def test_error_domain_is_the_tm_proto_package_on_both_sides() -> None:
    assert contract.ERROR_DOMAIN == tm_pb2.DESCRIPTOR.package == "stepping.tm.v1"
    assert DOMAIN == TM_ERROR_DOMAIN == contract.ERROR_DOMAIN


class _RecordingChannel:
    """Records the method paths a generated stub registers."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def unary_unary(self, path: str, *args: object, **kwargs: object) -> None:
        self.paths.append(path)


def test_query_prepared_method_is_the_generated_stubs_path() -> None:
    service = participant_pb2.DESCRIPTOR.services_by_name["ParticipantService"]
    method = service.methods_by_name["QueryPrepared"]
    assert f"/{service.full_name}/{method.name}" == contract.QUERY_PREPARED_METHOD
    assert service.full_name == contract.PARTICIPANT_SERVICE
    channel = _RecordingChannel()
    participant_pb2_grpc.ParticipantServiceStub(channel)  # type: ignore[call-overload]
    assert channel.paths == [contract.QUERY_PREPARED_METHOD]
    assert (
        contract.QUERY_PREPARED_METHOD
        == "/stepping.participant.v1.ParticipantService/QueryPrepared"
    )


def test_step_headers_may_not_clash_with_the_contract_or_grpc() -> None:
    reserved = ["stepping-gid", "stepping-x", "grpc-timeout", ":authority", "traceparent"]
    reserved += ["tracestate", "user-agent", "content-type", "te"]
    assert all(contract.is_reserved_header(k) for k in reserved)
    assert not any(contract.is_reserved_header(k) for k in ["x-tenant", "stepping", "trace"])


def test_one_version_everywhere() -> None:
    assert tm_service.__version__ == contract.VERSION == metadata.version("stepping-tm")
