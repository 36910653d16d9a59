"""Telemetry from OTEL_* variables (no I/O but the receiver), and log lines with trace ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tests.telemetry.otlp_receiver import OtlpReceiver
from tm_service import _logging
from tm_service._workers import _child_env
from tm_service.config import Settings, otel_environment
from tm_service.telemetry import Telemetry, TelemetryConfigError, configure_telemetry

SETTINGS = Settings.load(env={}, overrides={"replica_id": "tm-a"})


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in otel_environment():
        monkeypatch.delenv(name)


def _configure(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Telemetry:
    for name, value in env.items():  # the SDK reads some variables itself
        monkeypatch.setenv(name, value)
    return configure_telemetry(SETTINGS, otel_environment())


def _resource(telemetry: Telemetry) -> Resource:
    tracer = telemetry.tracer
    assert isinstance(tracer.resource, Resource)  # type: ignore[attr-defined]
    return tracer.resource  # type: ignore[attr-defined]


def test_nothing_configured_means_no_sdk_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = _configure({}, monkeypatch)
    assert (telemetry.enabled, telemetry.tracing, telemetry.metrics) == (False, False, False)
    assert telemetry.instruments is None
    assert not telemetry.tracer.start_span("x").is_recording()


def test_sdk_disabled_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert not _configure(env, monkeypatch).enabled


def test_console_traces_only(monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = _configure({"OTEL_TRACES_EXPORTER": "console"}, monkeypatch)
    try:
        assert telemetry.tracing and not telemetry.metrics
        attributes = _resource(telemetry).attributes
        assert attributes["service.name"] == "stepping-tm"
        assert attributes["service.instance.id"] == "tm-a"
    finally:
        telemetry.shutdown()


def test_service_name_and_sampler_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "tm-eu",
        "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7,team=payments",
        "OTEL_TRACES_SAMPLER": "always_off",
    }
    telemetry = _configure(env, monkeypatch)
    try:
        attributes = _resource(telemetry).attributes
        assert attributes["service.name"] == "tm-eu"
        assert attributes["service.instance.id"] == "pod-7"
        assert attributes["team"] == "payments"
        assert telemetry.tracer.sampler is ALWAYS_OFF  # type: ignore[attr-defined]
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unsupported ['zipkin']"),
        ({"OTEL_METRICS_EXPORTER": "otlp,statsd"}, "unsupported ['statsd']"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "OTLP over gRPC only",
        ),
    ],
)
def test_what_the_tm_cannot_do_is_a_clear_error(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TelemetryConfigError, match=message.replace("[", r"\[")):
        _configure(env, monkeypatch)


async def test_an_otlp_endpoint_alone_turns_on_traces_and_metrics(
    otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = _configure({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint}, monkeypatch)
    assert telemetry.tracing and telemetry.metrics
    with telemetry.tracer.start_as_current_span("hello"):
        telemetry.step_attempt("action", "OK", 0.01)
    # Flushes the span and a final metrics export (blocking: the receiver is on this loop).
    await asyncio.to_thread(telemetry.shutdown)
    await otlp.wait_for(lambda r: [s.name for s in r.spans] == ["hello"])
    assert otlp.spans[0].resource["service.name"] == "stepping-tm"
    assert otlp.latest_sum("stepping.step.attempts") == 1  # exported on shutdown too


def test_each_worker_gets_its_own_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load(env={}, overrides={"workers": 3, "metrics_port": 9464})
    assert [_child_env(settings, i)["STEPPING_METRICS_PORT"] for i in range(3)] == [
        "9464",
        "9465",
        "9466",
    ]
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    plain = Settings.load(env={}, overrides={"workers": 2})
    assert _child_env(plain, 1)["STEPPING_METRICS_PORT"] == "9465"


@pytest.fixture
def log_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    yield logging.getLogger("tm_service.test"), stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


@pytest.mark.parametrize("json_lines", [True, False])
def test_log_lines_carry_the_gid_and_the_current_trace(
    json_lines: bool, log_lines: tuple[logging.Logger, io.StringIO]
) -> None:
    log, stream = log_lines
    _logging.configure_logging("INFO", json_lines=json_lines)
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    tracer = TracerProvider().get_tracer("test")
    log.info("outside", extra={"gid": "g-1"})
    with tracer.start_as_current_span("pass") as span:
        log.info("inside", extra={"gid": "g-1"})
    context = span.get_span_context()
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    outside, inside = stream.getvalue().splitlines()
    if json_lines:
        assert json.loads(outside)["gid"] == "g-1"
        assert "trace_id" not in json.loads(outside)
        line = json.loads(inside)
        assert (line["message"], line["gid"]) == ("inside", "g-1")
        assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)
    else:
        assert outside.endswith("outside gid=g-1")
        assert inside.endswith(f"inside gid=g-1 trace_id={trace_id} span_id={span_id}")
