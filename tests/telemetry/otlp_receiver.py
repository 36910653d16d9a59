"""A tiny OTLP/gRPC receiver (traces and metrics) for tests: what a collector would get."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span with its resource's attributes, ids as ints."""

    resource: dict[str, Any]
    name: str
    kind: int
    trace_id: int
    span_id: int
    parent_span_id: int | None
    attributes: dict[str, Any]
    status_code: int
    status_message: str

    @classmethod
    def of(cls, resource: dict[str, Any], span: SpanProto) -> ReceivedSpan:
        return cls(
            resource=resource,
            name=span.name,
            kind=span.kind,
            trace_id=int.from_bytes(span.trace_id, "big"),
            span_id=int.from_bytes(span.span_id, "big"),
            parent_span_id=int.from_bytes(span.parent_span_id, "big")
            if span.parent_span_id
            else None,
            attributes=attributes(span.attributes),
            status_code=span.status.code,
            status_message=span.status.message,
        )


@dataclass
class OtlpReceiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(
        default_factory=list
    )
    server: grpc.aio.Server | None = None
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def Export(self, request: Any, context: Any) -> Any:  # both services
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    self.spans.extend(ReceivedSpan.of(resource, s) for s in scope.spans)
            return trace_service_pb2.ExportTraceServiceResponse()
        self.metric_requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def latest_sum(self, name: str, **attrs: Any) -> float | None:
        """A cumulative counter's latest total over points matching ``attrs``."""
        for request in reversed(self.metric_requests):
            total, seen = 0.0, False
            for rm in request.resource_metrics:
                for scope in rm.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name != name:
                            continue
                        for point in metric.sum.data_points:
                            if attrs.items() <= attributes(point.attributes).items():
                                seen = True
                                total += point.as_double or point.as_int
            if seen:
                return total
        return None

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    async def wait_for(self, check: Callable[[OtlpReceiver], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not check(self):
            if time.monotonic() > deadline:
                names = sorted({s.name for s in self.spans})
                raise AssertionError(f"not received in time; spans so far: {names}")
            await asyncio.sleep(0.05)

    async def start(self) -> OtlpReceiver:
        self.server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
