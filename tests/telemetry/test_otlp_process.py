"""TM processes exporting over real OTLP/gRPC, configured only by OTEL_* variables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.trace import SpanKind
from stepping.tm.v1 import tm_pb2 as S

from participant_sdk import ParticipantServer, RetryPolicy, TmClient, step
from participant_sdk.client import JobStatus
from tests.e2e.conftest import SpawnTm
from tests.integration.helpers import gid, tm_stub
from tests.integration.helpers import step as tm_step
from tests.integration.participant import Participant
from tests.telemetry.conftest import Spans
from tests.telemetry.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

SERVICE = "tel.v1.Crash"
TM_SERVICE = "stepping.tm.v1.TransactionManagerService"
FAST = RetryPolicy(initial_interval=0.05, backoff_coefficient=1.0, maximum_interval=0.05)
CLIENT, SERVER = SpanProto.SPAN_KIND_CLIENT, SpanProto.SPAN_KIND_SERVER


def otel_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **extra,
    }


async def test_a_tm_configured_only_by_otel_variables_exports_traces_and_metrics(
    spawn_tm: SpawnTm, database_url: str, participant: Participant, otlp: OtlpReceiver
) -> None:
    env = otel_env(
        otlp,
        OTEL_SERVICE_NAME="tm-under-test",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        OTEL_METRIC_EXPORT_INTERVAL="200",
    )
    tm = await spawn_tm(database_url, env=env)
    trace_id, caller = 0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174
    traceparent = f"00-{trace_id:032x}-{caller:016x}-01"
    g = gid()
    async with tm_stub(tm.target) as stub:
        done = await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[
                    tm_step(participant.target, "/o.v1.S/A"),
                    tm_step(participant.target, "/o.v1.S/B"),
                ],
                wait_result=True,
            ),
            metadata=(("traceparent", traceparent),),
        )
    assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
    await otlp.wait_for(lambda r: len(r.named("o.v1.S/B")) == 1)
    await otlp.wait_for(lambda r: r.latest_sum("stepping.jobs.finished") == 1)
    tm.terminate()
    assert await tm.wait_exit(15) == 0

    served = otlp.named(f"{TM_SERVICE}/Submit")[0]
    assert served.resource["service.name"] == "tm-under-test"
    assert served.resource["deployment.environment"] == "test"
    assert served.kind == SERVER
    assert (served.trace_id, served.parent_span_id) == (trace_id, caller)
    (job_pass,) = otlp.named("stepping job")
    assert (job_pass.trace_id, job_pass.parent_span_id) == (trace_id, caller)
    for index, name in enumerate("AB"):
        (attempt,) = otlp.named(f"o.v1.S/{name}")
        assert attempt.kind == CLIENT
        assert (attempt.trace_id, attempt.parent_span_id) == (trace_id, job_pass.span_id)
        assert attempt.attributes["stepping.step.index"] == index
        # The participant got this attempt's context, not the caller's.
        (call,) = [c for c in participant.calls if c.method == f"/o.v1.S/{name}"]
        assert call.metadata["traceparent"] == f"00-{trace_id:032x}-{attempt.span_id:016x}-01"
    assert otlp.latest_sum("stepping.jobs.started", **{"stepping.mode": "message"}) == 1
    assert otlp.latest_sum("stepping.step.attempts", **{"stepping.outcome": "OK"}) == 2


async def test_a_sampler_from_the_environment_decides_what_is_exported(
    spawn_tm: SpawnTm, database_url: str, participant: Participant, otlp: OtlpReceiver
) -> None:
    env = otel_env(otlp, OTEL_TRACES_SAMPLER="always_off", OTEL_METRICS_EXPORTER="none")
    tm = await spawn_tm(database_url, env=env)
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[tm_step(participant.target, "/o.v1.S/A")], wait_result=True
            )
        )
    tm.terminate()
    assert await tm.wait_exit(15) == 0
    assert otlp.spans == [] and otlp.metric_requests == []
    # Not sampled, still propagated: the participant sees a context flagged "not sampled".
    (call,) = participant.calls
    flags = int(call.metadata["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 0x01 == 0


@pytest_asyncio.fixture
async def crash_shop(
    spans: Spans,
) -> AsyncIterator[tuple[ParticipantServer, asyncio.Event, list[int]]]:
    """Steps One, Two, Three; Two's first call blocks until the event is set."""
    release = asyncio.Event()
    two_calls: list[int] = []

    @step(name="One")
    async def one(payload: bytes) -> bytes:
        return b"1"

    @step(name="Two")
    async def two(payload: bytes) -> bytes:
        two_calls.append(len(two_calls) + 1)
        if len(two_calls) == 1:
            await release.wait()
        return b"2"

    @step(name="Three")
    async def three(payload: bytes) -> bytes:
        return b"3"

    async with ParticipantServer(
        steps=[one, two, three],
        service=SERVICE,
        host="127.0.0.1",
        tracer_provider=spans.participant,
        grace=0.5,
    ) as server:
        yield server, release, two_calls
        release.set()


async def test_steps_after_a_sigkill_and_restart_keep_the_clients_trace(
    spawn_tm: SpawnTm,
    database_url: str,
    otlp: OtlpReceiver,
    spans: Spans,
    crash_shop: tuple[ParticipantServer, asyncio.Event, list[int]],
) -> None:
    server, release, two_calls = crash_shop
    env = otel_env(otlp, OTEL_METRICS_EXPORTER="none")
    first = await spawn_tm(database_url, env=env)
    async with TmClient.connect(first.target, tracer_provider=spans.client) as tm:
        with spans.client.get_tracer("client").start_as_current_span("checkout") as root:
            job = tm.job(retry_policy=FAST)
            for name in ("One", "Two", "Three"):
                job.add_step(server.endpoint(name), b"")
            await job.start()
    trace_id = root.get_span_context().trace_id
    submit = spans.one(f"{TM_SERVICE}/Submit", SpanKind.CLIENT)
    await otlp.wait_for(lambda r: len(r.named(f"{SERVICE}/One")) == 1 and bool(two_calls))
    first.kill()  # step Two is in flight
    release.set()
    (before,) = otlp.named(f"{SERVICE}/One")
    first_instance = before.resource["service.instance.id"]

    second = await spawn_tm(database_url, env=env)
    async with TmClient.connect(second.target, tracer_provider=spans.client) as tm:
        for _ in range(200):
            if (await tm.get(job.gid)).status is JobStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the job did not finish after the restart")
    await otlp.wait_for(lambda r: len(r.named(f"{SERVICE}/Three")) == 1)
    second.terminate()
    assert await second.wait_exit(15) == 0

    def after_restart(s: ReceivedSpan) -> bool:
        return bool(s.resource["service.instance.id"] != first_instance)

    # The restarted TM's pass hangs under the client's Submit, by the stored context.
    (job_pass,) = [s for s in otlp.named("stepping job") if after_restart(s)]
    assert (job_pass.trace_id, job_pass.parent_span_id) == (trace_id, submit.context.span_id)
    resumed = [s for s in otlp.spans if after_restart(s) and s.kind == CLIENT]
    assert [s.name for s in resumed] == [f"{SERVICE}/Two", f"{SERVICE}/Three"]
    for attempt in resumed:
        assert (attempt.trace_id, attempt.parent_span_id) == (trace_id, job_pass.span_id)
        # ...and the participant's spans of those calls are the attempts' children.
        (handled,) = [
            s
            for s in spans.of("participant")
            if s.parent is not None and s.parent.span_id == attempt.span_id
        ]
        assert handled.context.trace_id == trace_id
        assert handled.name == attempt.name
    assert two_calls == [1, 2]  # the in-flight call was made again after the restart
