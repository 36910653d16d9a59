"""Calls to participants, traced and measured: a wrapper around the TM's transport.

Installed only when telemetry is on. Each call (a step attempt or a QueryPrepared)
becomes a CLIENT span, child of the current processing pass, named and attributed
after the RPC semantic conventions plus ``stepping.*`` (read from the call's
``CallInfo``); its W3C context replaces the job's stored trace context in the call,
so the participant's spans are children of the attempt.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

import grpc
from opentelemetry.trace import SpanKind, StatusCode
from stepping.contract import CallInfo

from tm_service.domain import Endpoint
from tm_service.telemetry._attributes import (
    ATTEMPT,
    GID,
    OP,
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
    SERVER_ADDRESS,
    SERVER_PORT,
    STEP_INDEX,
    STEP_NAME,
    W3C,
    split_method,
    split_target,
)
from tm_service.telemetry._telemetry import Telemetry

__all__ = ["InstrumentedTransport"]


class _Result(Protocol):
    @property
    def code(self) -> grpc.StatusCode: ...

    @property
    def error_text(self) -> str: ...


R_co = TypeVar("R_co", bound=_Result, covariant=True)
R = TypeVar("R", bound=_Result)


class _Transport(Protocol[R_co]):
    async def call(
        self, endpoint: Endpoint, payload: bytes, *, info: CallInfo, timeout: float
    ) -> R_co: ...

    async def close(self) -> None: ...


class InstrumentedTransport(Generic[R]):
    """The TM's transport with a span and metrics per call."""

    def __init__(self, inner: _Transport[R], telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._rpc_attributes: dict[tuple[str, str], dict[str, Any]] = {}

    async def call(
        self, endpoint: Endpoint, payload: bytes, *, info: CallInfo, timeout: float
    ) -> R:
        tel = self._telemetry
        started = time.perf_counter()
        if tel.tracing:
            result = await self._traced(endpoint, payload, info, timeout)
        else:
            result = await self._inner.call(endpoint, payload, info=info, timeout=timeout)
        if tel.metrics:
            tel.step_attempt(info.op, result.code.name, time.perf_counter() - started)
        return result

    async def _traced(
        self, endpoint: Endpoint, payload: bytes, info: CallInfo, timeout: float
    ) -> R:
        attributes = dict(self._rpc(endpoint))
        attributes[GID] = info.gid
        attributes[OP] = info.op
        if info.step_index is not None:  # a step, not a back-check
            attributes[STEP_INDEX] = info.step_index
            attributes[STEP_NAME] = info.step_name
            attributes[ATTEMPT] = info.attempt
        service, method = split_method(endpoint.method)
        with self._telemetry.tracer.start_as_current_span(
            f"{service}/{method}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            W3C.inject(carrier)
            # The job's context gives way to this attempt's span.
            sent = replace(info, trace_context=carrier)
            result = await self._inner.call(endpoint, payload, info=sent, timeout=timeout)
            code = result.code
            span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
            if code is not grpc.StatusCode.OK:
                message = result.error_text
                # No Python exception was raised: record the participant's error the way
                # record_exception would, so trace UIs show it as the attempt's error.
                span.add_event(
                    "exception",
                    {"exception.type": f"StatusCode.{code.name}", "exception.message": message},
                )
                span.set_status(StatusCode.ERROR, message)
            return result

    def _rpc(self, endpoint: Endpoint) -> dict[str, Any]:
        key = (endpoint.target, endpoint.method)
        cached = self._rpc_attributes.get(key)
        if cached is None:
            service, method = split_method(endpoint.method)
            host, port = split_target(endpoint.target)
            cached = {
                RPC_SYSTEM: "grpc",
                RPC_SERVICE: service,
                RPC_METHOD: method,
                SERVER_ADDRESS: host,
            }
            if port is not None:
                cached[SERVER_PORT] = port
            self._rpc_attributes[key] = cached
        return cached

    async def close(self) -> None:
        await self._inner.close()
