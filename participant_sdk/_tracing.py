"""OpenTelemetry in the SDK: spans of TM calls (client) and step calls (server).

The SDK uses the OpenTelemetry API only: spans go to the global tracer provider
(``opentelemetry.trace.set_tracer_provider``), or to the one given to
``TmClient.connect(tracer_provider=...)`` / ``ParticipantServer(tracer_provider=...)``.
Without an SDK configured they are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "ATTEMPT",
    "GID",
    "OP",
    "RPC_GRPC_STATUS_CODE",
    "STEP_INDEX",
    "STEP_NAME",
    "extract_w3c",
    "rpc_attributes",
    "set_code",
    "tracer",
]

GID = "stepping.gid"
STEP_INDEX = "stepping.step.index"
STEP_NAME = "stepping.step.name"
OP = "stepping.op"
ATTEMPT = "stepping.attempt"
RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code"

_SCOPE = "stepping.participant_sdk"
_VERSION = "0.1.0"
# The TM sends W3C trace context (the step contract), whatever propagator is global.
_W3C = TraceContextTextMapPropagator()


def tracer(provider: TracerProvider | None) -> trace.Tracer:
    """The SDK's tracer on ``provider``, or on the global provider (follows it when set later)."""
    return trace.get_tracer(_SCOPE, _VERSION, tracer_provider=provider)


def extract_w3c(metadata: Iterable[tuple[str, Any]]) -> Context:
    """The caller's W3C trace context in a call's metadata."""
    carrier = {
        k: v for k, v in metadata if k in ("traceparent", "tracestate") and isinstance(v, str)
    }
    return _W3C.extract(carrier)


def rpc_attributes(method: str, target: str | None = None) -> dict[str, Any]:
    """RPC semantic-convention attributes of ``/pkg.Service/Method`` (at ``host:port``)."""
    service, _, name = method.lstrip("/").rpartition("/")
    attributes: dict[str, Any] = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    if target:
        host, sep, port = target.rpartition("///")[2].rpartition(":")
        if sep and port.isdigit():
            attributes["server.address"] = host.strip("[]")
            attributes["server.port"] = int(port)
        else:
            attributes["server.address"] = target
    return attributes


def set_code(span: Span, code: grpc.StatusCode, message: str = "", *, error: bool) -> None:
    """Record the call's status code; ``error`` marks the span failed with ``message``."""
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    if error:
        span.set_status(StatusCode.ERROR, f"{code.name}: {message}" if message else code.name)
