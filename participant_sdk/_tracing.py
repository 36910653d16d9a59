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
from stepping import contract

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

# The names the TM reports too (its spans and ours join in one trace).
GID = contract.ATTR_GID
STEP_INDEX = contract.ATTR_STEP_INDEX
STEP_NAME = contract.ATTR_STEP_NAME
OP = contract.ATTR_OP
ATTEMPT = contract.ATTR_ATTEMPT
RPC_GRPC_STATUS_CODE = contract.ATTR_RPC_GRPC_STATUS_CODE

_SCOPE = "stepping.participant_sdk"
_VERSION = contract.VERSION
# The TM sends W3C trace context (the step contract), whatever propagator is global.
_W3C = TraceContextTextMapPropagator()


def tracer(provider: TracerProvider | None) -> trace.Tracer:
    """The SDK's tracer on ``provider``, or on the global provider (follows it when set later)."""
    return trace.get_tracer(_SCOPE, _VERSION, tracer_provider=provider)


def extract_w3c(metadata: Iterable[tuple[str, Any]]) -> Context:
    """The caller's W3C trace context in a call's metadata."""
    carrier = {k: v for k, v in metadata if k in contract.TRACE_KEYS and isinstance(v, str)}
    return _W3C.extract(carrier)


def rpc_attributes(method: str, target: str | None = None) -> dict[str, Any]:
    """RPC semantic-convention attributes of ``/pkg.Service/Method`` (at ``host:port``)."""
    service, name = contract.split_method(method)
    attributes: dict[str, Any] = {
        contract.ATTR_RPC_SYSTEM: "grpc",
        contract.ATTR_RPC_SERVICE: service,
        contract.ATTR_RPC_METHOD: name,
    }
    if target:
        host, port = contract.split_target(target)
        if port is not None:
            attributes[contract.ATTR_SERVER_ADDRESS] = host
            attributes[contract.ATTR_SERVER_PORT] = port
        else:  # reported whole, scheme included, as the SDK always has
            attributes[contract.ATTR_SERVER_ADDRESS] = target
    return attributes


def set_code(span: Span, code: grpc.StatusCode, message: str = "", *, error: bool) -> None:
    """Record the call's status code; ``error`` marks the span failed with ``message``."""
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    if error:
        span.set_status(StatusCode.ERROR, f"{code.name}: {message}" if message else code.name)
