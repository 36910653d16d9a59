"""Spans of the TM's RPCs and of the QueryPrepared back-check; what is not traced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import create_async_engine
from stepping.tm.v1 import tm_pb2 as S

from participant_sdk import ParticipantServer, TmClient
from participant_sdk.errors import TransactionNotFound
from participant_sdk.migrations import create_barrier_table
from tests.integration.helpers import dur, gid, step, tm_stub, wait_status
from tests.integration.participant import Participant
from tests.telemetry.conftest import Spans
from tm_service import TmServer

TM_SERVICE = "stepping.tm.v1.TransactionManagerService"
QP = "stepping.participant.v1.ParticipantService/QueryPrepared"


async def test_a_failed_tm_call_is_an_error_on_both_sides(
    traced_tm: TmServer, spans: Spans
) -> None:
    async with TmClient.connect(traced_tm.target, tracer_provider=spans.client) as tm:
        with pytest.raises(TransactionNotFound):
            await tm.abort("no-such-job")
    client = spans.one(f"{TM_SERVICE}/Abort", SpanKind.CLIENT)
    served = spans.one(f"{TM_SERVICE}/Abort", SpanKind.SERVER)
    assert served.parent is not None and served.parent.span_id == client.context.span_id
    for span in (client, served):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is not None
        assert span.status.description.startswith("NOT_FOUND: transaction 'no-such-job'")
        assert span.attributes is not None
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
        assert span.attributes["stepping.gid"] == "no-such-job"
    assert [e.attributes["exception.type"] for e in client.events if e.attributes] == [
        "participant_sdk.errors.TransactionNotFound"
    ]


async def test_new_gid_spans_carry_the_new_gid_and_health_checks_are_not_traced(
    traced_tm: TmServer, spans: Spans
) -> None:
    async with TmClient.connect(traced_tm.target, tracer_provider=spans.client) as tm:
        new = await tm.new_gid()
        async with grpc.aio.insecure_channel(traced_tm.target) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    # connect() checks the TM with a NewGid too: two calls, both traced on both sides.
    served = [s for s in spans.named(f"{TM_SERVICE}/NewGid") if s.kind is SpanKind.SERVER]
    assert len(served) == 2
    assert served[-1].attributes is not None
    assert served[-1].attributes["stepping.gid"] == new
    assert served[-1].attributes["server.port"] == traced_tm.port
    assert not [s for s in spans.all() if "Health" in s.name]


async def test_the_back_check_is_a_query_prepared_span_on_both_sides(
    traced_tm: TmServer, spans: Spans, make_database: Callable[..., Awaitable[str]]
) -> None:
    engine = create_async_engine(await make_database())
    await create_barrier_table(engine)
    try:
        async with ParticipantServer(
            databases=engine, host="127.0.0.1", tracer_provider=spans.participant
        ) as orders:
            nowhere = "127.0.0.1:1"
            g = gid()
            async with TmClient.connect(traced_tm.target, tracer_provider=spans.client) as tm:
                # Prepared, never committed nor submitted: the TM asks, the SDK says rolled back.
                await tm.call(
                    tm.stub.Prepare,
                    S.PrepareRequest(
                        gid=g,
                        steps=[step(nowhere, "/x.v1.Y/Z")],
                        query_prepared=S.Endpoint(target=orders.target),
                        options=S.TransactionOptions(check_prepared_after=dur(0.05)),
                    ),
                )
                async with tm_stub(traced_tm.target) as stub:
                    await wait_status(stub, g, S.TRANSACTION_STATUS_ABORTED)
    finally:
        await engine.dispose()
    prepare = spans.one(f"{TM_SERVICE}/Prepare", SpanKind.CLIENT)
    (job_pass,) = spans.named("stepping job")
    asked = spans.one(QP, SpanKind.CLIENT)
    answered = spans.one(QP, SpanKind.SERVER)
    assert job_pass.parent is not None and job_pass.parent.span_id == prepare.context.span_id
    assert asked.parent is not None and asked.parent.span_id == job_pass.context.span_id
    assert answered.parent is not None and answered.parent.span_id == asked.context.span_id
    assert {s.context.trace_id for s in (prepare, job_pass, asked, answered)} == {
        prepare.context.trace_id
    }
    assert asked.attributes is not None and answered.attributes is not None
    assert asked.attributes["stepping.op"] == answered.attributes["stepping.op"] == "query_prepared"
    assert asked.attributes["stepping.gid"] == answered.attributes["stepping.gid"] == g
    assert answered.attributes["stepping.prepared.outcome"] == "rolled_back"
    assert job_pass.attributes is not None
    assert job_pass.attributes["stepping.status"] == "ABORTED"


async def test_tracing_off_passes_the_stored_traceparent_through(
    tm: TmServer, participant: Participant
) -> None:
    # The default TM has telemetry off: the client's context still reaches participants.
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[step(participant.target, "/o.v1.S/A")], wait_result=True
            ),
            metadata=(("traceparent", traceparent),),
        )
    (call,) = participant.calls
    assert call.metadata["traceparent"] == traceparent
    assert tm.telemetry.enabled is False


async def test_without_a_callers_context_the_jobs_trace_starts_at_the_tms_span(
    traced_tm: TmServer, spans: Spans, participant: Participant
) -> None:
    async with tm_stub(traced_tm.target) as stub:  # plain gRPC, no trace context
        await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[step(participant.target, "/o.v1.S/A")], wait_result=True
            )
        )
    served = spans.one(f"{TM_SERVICE}/Submit", SpanKind.SERVER)
    assert served.parent is None
    (job_pass,) = spans.named("stepping job")
    assert job_pass.parent is not None and job_pass.parent.span_id == served.context.span_id
    assert job_pass.links == ()  # the parent already is the Submit span
    attempt = spans.one("o.v1.S/A", SpanKind.CLIENT)
    assert attempt.context.trace_id == served.context.trace_id
    (call,) = participant.calls
    assert call.metadata["traceparent"].split("-")[1:3] == [
        f"{attempt.context.trace_id:032x}",
        f"{attempt.context.span_id:016x}",
    ]
