"""Attribute names (OpenTelemetry semantic conventions and ours) and small helpers."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "ATTEMPT",
    "GID",
    "MODE",
    "OP",
    "OUTCOME",
    "RPC_GRPC_STATUS_CODE",
    "RPC_METHOD",
    "RPC_SERVICE",
    "RPC_SYSTEM",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "STATUS",
    "STEP_INDEX",
    "STEP_NAME",
    "TRACE_KEYS",
    "W3C",
    "current_w3c",
    "extract_w3c",
    "split_method",
    "split_target",
]

# Ours: every span and metric of a job carries these where they apply.
GID = "stepping.gid"
STEP_INDEX = "stepping.step.index"
STEP_NAME = "stepping.step.name"
OP = "stepping.op"  # action | compensate | query_prepared
ATTEMPT = "stepping.attempt"
MODE = "stepping.mode"  # message | saga
STATUS = "stepping.status"  # a job's final status: SUCCEEDED, FAILED, ABORTED
OUTCOME = "stepping.outcome"  # a call's gRPC status code name: OK, UNAVAILABLE, ...

# OpenTelemetry semantic conventions (RPC, gRPC).
RPC_SYSTEM = "rpc.system"
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# The step contract sends W3C trace context, whatever propagator a process configured.
W3C = TraceContextTextMapPropagator()
TRACE_KEYS = frozenset({"traceparent", "tracestate"})


def extract_w3c(pairs: Iterable[tuple[str, object]]) -> Context:
    """The W3C trace context in gRPC metadata (or a stored dict's items)."""
    carrier = {k: v for k, v in pairs if k in TRACE_KEYS and isinstance(v, str)}
    return W3C.extract(carrier)


def current_w3c() -> dict[str, str]:
    """The current span's W3C context ({} when no span is current, e.g. tracing off)."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        W3C.inject(carrier)
    return carrier


def split_method(method: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` → ``("pkg.Service", "Method")``."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def split_target(target: str) -> tuple[str, int | None]:
    """``"host:port"`` (or ``"[::1]:port"``, ``"dns:///host:port"``) → host and port."""
    address = target.rpartition("///")[2]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)
