"""One trace per job: client → TM → step attempts → participant, with in-memory exporters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from participant_sdk import ParticipantServer, RetryPolicy, StepFailed, TmClient, step
from participant_sdk.client import JobStatus
from tests.telemetry.conftest import Spans
from tm_service import TmServer

SERVICE = "tel.v1.Steps"
TM_SERVICE = "stepping.tm.v1.TransactionManagerService"
FAST = RetryPolicy(initial_interval=0.05, backoff_coefficient=1.0, maximum_interval=0.05)


@dataclass
class Script:
    """How the steps behave: failures still to come per step name."""

    failures: dict[str, list[Exception]] = field(default_factory=dict)


@pytest_asyncio.fixture
async def shop(spans: Spans) -> AsyncIterator[tuple[ParticipantServer, Script]]:
    script = Script()
    user_tracer = spans.participant.get_tracer("shop")

    async def work(name: str) -> bytes:
        # User code extends the SDK's server span.
        with user_tracer.start_as_current_span(f"work {name}"):
            pending = script.failures.get(name)
            if pending:
                raise pending.pop(0)
        return name.encode()

    @step(name="Reserve")
    async def reserve(payload: bytes) -> bytes:
        return await work("Reserve")

    @step(name="Charge")
    async def charge(payload: bytes) -> bytes:
        return await work("Charge")

    @step(name="Ship")
    async def ship(payload: bytes) -> bytes:
        return await work("Ship")

    async with ParticipantServer(
        steps=[reserve, charge, ship],
        service=SERVICE,
        host="127.0.0.1",
        tracer_provider=spans.participant,
    ) as server:
        yield server, script


def _child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    assert span.parent is not None, f"{span.name} has no parent"
    return bool(
        span.parent.span_id == parent.context.span_id
        and span.context.trace_id == parent.context.trace_id
    )


async def test_a_three_step_job_is_one_trace_from_client_to_participant(
    traced_tm: TmServer, spans: Spans, shop: tuple[ParticipantServer, Script]
) -> None:
    server, _ = shop
    client_tracer = spans.client.get_tracer("client")
    async with TmClient.connect(traced_tm.target, tracer_provider=spans.client) as tm:
        with client_tracer.start_as_current_span("place order") as root:
            job = tm.job(retry_policy=FAST)
            for name in ("Reserve", "Charge", "Ship"):
                job.add_step(server.endpoint(name), name.encode())
            state = await job.start(wait=True)
    assert state.status is JobStatus.SUCCEEDED
    trace_id = root.get_span_context().trace_id
    gid = job.gid

    # The client's call, and the TM's server span under it.
    submit = spans.one(f"{TM_SERVICE}/Submit", SpanKind.CLIENT)
    assert _child_of(submit, spans.one("place order"))
    assert submit.attributes == {
        "rpc.system": "grpc",
        "rpc.service": TM_SERVICE,
        "rpc.method": "Submit",
        "server.address": "127.0.0.1",
        "server.port": traced_tm.port,
        "stepping.gid": gid,
        "rpc.grpc.status_code": 0,
    }
    served = spans.one(f"{TM_SERVICE}/Submit", SpanKind.SERVER)
    assert _child_of(served, submit)
    assert served.resource.attributes["service.name"] == "stepping-tm"
    assert served.attributes is not None
    assert served.attributes["stepping.gid"] == gid
    assert served.attributes["rpc.grpc.status_code"] == 0

    # The processing pass joins the trace through the stored context (not the RPC's span).
    (job_pass,) = spans.named("stepping job")
    assert _child_of(job_pass, submit)
    assert [link.context.span_id for link in job_pass.links] == [served.context.span_id]
    assert job_pass.attributes == {
        "stepping.gid": gid,
        "stepping.mode": "message",
        "stepping.status": "SUCCEEDED",
    }

    for index, name in enumerate(("Reserve", "Charge", "Ship")):
        attempt = spans.one(f"{SERVICE}/{name}", SpanKind.CLIENT)
        assert _child_of(attempt, job_pass)
        assert attempt.attributes == {
            "rpc.system": "grpc",
            "rpc.service": SERVICE,
            "rpc.method": name,
            "server.address": "127.0.0.1",
            "server.port": server.port,
            "stepping.gid": gid,
            "stepping.step.index": index,
            "stepping.step.name": name,
            "stepping.op": "action",
            "stepping.attempt": 1,
            "rpc.grpc.status_code": 0,
        }
        assert attempt.status.status_code is StatusCode.UNSET
        handled = spans.one(f"{SERVICE}/{name}", SpanKind.SERVER)
        assert _child_of(handled, attempt)
        assert handled.resource.attributes["service.name"] == "participant"
        assert handled.attributes == {
            "rpc.system": "grpc",
            "rpc.service": SERVICE,
            "rpc.method": name,
            "stepping.gid": gid,
            "stepping.step.index": index,
            "stepping.step.name": name,
            "stepping.op": "action",
            "stepping.attempt": 1,
            "rpc.grpc.status_code": 0,
        }
        assert _child_of(spans.one(f"work {name}"), handled)

    # Everything of the job is in the client's trace, in order.
    job_spans = [s for s in spans.all() if s.name != f"{TM_SERVICE}/NewGid"]
    assert {s.context.trace_id for s in job_spans} == {trace_id}
    attempts = sorted(
        (s for s in spans.all() if s.kind is SpanKind.CLIENT and s.name.startswith(SERVICE)),
        key=lambda s: s.start_time or 0,
    )
    assert [s.name.rsplit("/", 1)[1] for s in attempts] == ["Reserve", "Charge", "Ship"]


async def test_a_step_failing_twice_shows_three_attempts_with_the_errors(
    traced_tm: TmServer, spans: Spans, shop: tuple[ParticipantServer, Script]
) -> None:
    server, script = shop
    script.failures["Charge"] = [ConnectionError("bank down"), RuntimeError("bank busy")]
    async with TmClient.connect(traced_tm.target, tracer_provider=spans.client) as tm:
        job = tm.job(retry_policy=FAST)
        for name in ("Reserve", "Charge", "Ship"):
            job.add_step(server.endpoint(name), b"")
        state = await job.start(wait=True)
    assert state.status is JobStatus.SUCCEEDED

    attempts = sorted(
        spans.named(f"{SERVICE}/Charge"), key=lambda s: (s.kind.value, s.start_time or 0)
    )
    tm_side = [s for s in attempts if s.kind is SpanKind.CLIENT]
    participant_side = [s for s in attempts if s.kind is SpanKind.SERVER]
    assert [s.attributes["stepping.attempt"] for s in tm_side if s.attributes] == [1, 2, 3]
    assert [s.status.status_code for s in tm_side] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert tm_side[0].status.description == "UNAVAILABLE: ConnectionError: bank down"
    assert tm_side[1].status.description == "INTERNAL: RuntimeError: bank busy"
    assert [s.attributes["rpc.grpc.status_code"] for s in tm_side if s.attributes] == [14, 13, 0]
    (event,) = tm_side[0].events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.message"] == "UNAVAILABLE: ConnectionError: bank down"
    # Each participant span is the child of its own attempt and records the exception.
    for client_span, server_span in zip(tm_side, participant_side, strict=True):
        assert _child_of(server_span, client_span)
    assert [e.attributes["exception.type"] for e in participant_side[0].events if e.attributes] == [
        "ConnectionError"
    ]
    assert participant_side[0].status.status_code is StatusCode.ERROR
    assert participant_side[2].status.status_code is StatusCode.UNSET
    # All three attempts ran in one pass of the job (short retries wait in memory).
    (job_pass,) = spans.named("stepping job")
    assert all(_child_of(s, job_pass) for s in tm_side)


async def test_a_business_failure_marks_the_attempt_the_step_and_the_job_failed(
    traced_tm: TmServer, spans: Spans, shop: tuple[ParticipantServer, Script]
) -> None:
    server, script = shop
    script.failures["Charge"] = [StepFailed("card declined")]
    async with TmClient.connect(traced_tm.target, tracer_provider=spans.client) as tm:
        job = tm.job(retry_policy=FAST)
        for name in ("Reserve", "Charge", "Ship"):
            job.add_step(server.endpoint(name), b"")
        state = await job.start(wait=True)
    assert state.status is JobStatus.FAILED

    attempt = spans.one(f"{SERVICE}/Charge", SpanKind.CLIENT)
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.status.description == "ABORTED: card declined"
    handled = spans.one(f"{SERVICE}/Charge", SpanKind.SERVER)
    assert handled.status.description == "ABORTED: card declined"
    assert not spans.named(f"{SERVICE}/Ship")
    (job_pass,) = spans.named("stepping job")
    assert job_pass.status.status_code is StatusCode.ERROR
    assert job_pass.status.description is not None
    assert "card declined" in job_pass.status.description
    assert job_pass.attributes is not None
    assert job_pass.attributes["stepping.status"] == "FAILED"
