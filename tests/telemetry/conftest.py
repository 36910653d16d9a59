"""Fixtures of the telemetry tests: in-memory span and metric exporters, a traced TM.

Each "service" (client, TM, participant) gets its own TracerProvider (its own
``service.name``) writing to one InMemorySpanExporter, so a test sees the whole
trace. Nothing touches the global OpenTelemetry providers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import test_settings
from tests.e2e.conftest import spawn_tm  # noqa: F401  (a fixture, used by the e2e tests here)
from tests.telemetry.otlp_receiver import OtlpReceiver
from tm_service import TmServer
from tm_service.telemetry import Telemetry


@dataclass
class Spans:
    """The finished spans of a test, with a provider per service."""

    exporter: InMemorySpanExporter
    client: TracerProvider
    tm: TracerProvider
    participant: TracerProvider

    def all(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def of(self, service: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.resource.attributes["service.name"] == service]

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str, kind: SpanKind | None = None) -> ReadableSpan:
        found = [s for s in self.named(name) if kind is None or s.kind is kind]
        assert len(found) == 1, f"{len(found)} spans {name} ({kind}): {self.names()}"
        return found[0]

    def names(self) -> list[str]:
        return [f"{s.resource.attributes['service.name']!s}:{s.name}" for s in self.all()]


def _provider(exporter: InMemorySpanExporter, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    result = Spans(
        exporter,
        _provider(exporter, "client"),
        _provider(exporter, "stepping-tm"),
        _provider(exporter, "participant"),
    )
    yield result
    for provider in (result.client, result.tm, result.participant):
        provider.shutdown()


@dataclass
class Metrics:
    """An in-memory metric reader and its provider; ``points()`` collects now."""

    reader: InMemoryMetricReader
    provider: MeterProvider

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def sum(self, name: str, **attributes: Any) -> float:
        """A counter's value (histograms: their count) over points matching ``attributes``."""
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += getattr(point, "value", 0) or getattr(point, "count", 0)
        return total


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield Metrics(reader, provider)
    provider.shutdown()


@pytest.fixture
def telemetry(spans: Spans, metrics: Metrics) -> Telemetry:
    return Telemetry(tracer_provider=spans.tm, meter_provider=metrics.provider)


@pytest_asyncio.fixture
async def traced_tm(database_url: str, telemetry: Telemetry) -> AsyncIterator[TmServer]:
    """A TM in this process with tracing and metrics to the in-memory exporters."""
    server = TmServer(test_settings(database_url), telemetry=telemetry)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


@pytest_asyncio.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    """An OTLP/gRPC receiver on 127.0.0.1 (``otlp.endpoint``)."""
    receiver = await OtlpReceiver().start()
    yield receiver
    await receiver.stop()
