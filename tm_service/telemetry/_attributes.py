"""Attribute names (OpenTelemetry semantic conventions and ours) and small helpers."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from stepping import contract
from stepping.contract import TRACE_KEYS, split_method, split_target

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

# Shared with participants (their SDK reports the same names): the contract's.
GID = contract.ATTR_GID
STEP_INDEX = contract.ATTR_STEP_INDEX
STEP_NAME = contract.ATTR_STEP_NAME
OP = contract.ATTR_OP  # action | compensate | query_prepared
ATTEMPT = contract.ATTR_ATTEMPT
RPC_SYSTEM = contract.ATTR_RPC_SYSTEM
RPC_SERVICE = contract.ATTR_RPC_SERVICE
RPC_METHOD = contract.ATTR_RPC_METHOD
RPC_GRPC_STATUS_CODE = contract.ATTR_RPC_GRPC_STATUS_CODE
SERVER_ADDRESS = contract.ATTR_SERVER_ADDRESS
SERVER_PORT = contract.ATTR_SERVER_PORT

# The TM's own: every span and metric of a job carries these where they apply.
MODE = "stepping.mode"  # message | saga
STATUS = "stepping.status"  # a job's final status: SUCCEEDED, FAILED, ABORTED
OUTCOME = "stepping.outcome"  # a call's gRPC status code name: OK, UNAVAILABLE, ...

# The step contract sends W3C trace context, whatever propagator a process configured.
W3C = TraceContextTextMapPropagator()


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
