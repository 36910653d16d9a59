"""Serving one step call: metadata → StepInfo, payload → argument, outcome → status."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from stepping import contract

from participant_sdk._codec import PayloadDecodeError
from participant_sdk._guard import CallGuard
from participant_sdk._info import Op, StepInfo, step_context
from participant_sdk._step import StepDefinition
from participant_sdk._tracing import (
    ATTEMPT,
    GID,
    OP,
    STEP_INDEX,
    STEP_NAME,
    extract_w3c,
    rpc_attributes,
    set_code,
)
from participant_sdk.errors import RetryLater, StepFailed

__all__ = ["StepHandler", "call_step", "parse_step_info"]

_log = logging.getLogger("participant_sdk")

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

# A failed call: status code, message, trailing metadata (for rich status details).
_Failure = tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]


def parse_step_info(
    metadata: Sequence[tuple[str, str | bytes]], time_remaining: float | None
) -> StepInfo:
    """Builds the StepInfo of a call from its metadata; ValueError if it is not a TM call."""
    own: dict[str, str] = {}
    headers: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, bytes) or key in contract.TRANSPORT_KEYS or key.startswith("grpc-"):
            continue  # "-bin" and transport keys are not step headers
        (own if key.startswith(contract.KEY_PREFIX) else headers)[key] = value
    gid = own.get(contract.KEY_GID)
    if not gid:
        raise ValueError(f"missing {contract.KEY_GID} metadata: steps are called by the TM")
    op = own.get(contract.KEY_OP, contract.OP_ACTION)
    if op not in (contract.OP_ACTION, contract.OP_COMPENSATE):
        raise ValueError(f"unknown {contract.KEY_OP} {op!r}")
    op_: Op = "compensate" if op == contract.OP_COMPENSATE else "action"
    try:
        index = int(own.get(contract.KEY_STEP_INDEX, "0"))
        attempt = int(own.get(contract.KEY_ATTEMPT, "1"))
    except ValueError:
        raise ValueError(
            f"{contract.KEY_STEP_INDEX} and {contract.KEY_ATTEMPT} must be integers"
        ) from None
    deadline = (
        None
        if time_remaining is None
        else datetime.now(UTC) + timedelta(seconds=max(0.0, time_remaining))
    )
    return StepInfo(
        gid=gid,
        step_index=index,
        step_name=own.get(contract.KEY_STEP_NAME, ""),
        op=op_,
        attempt=attempt,
        deadline=deadline,
        headers=headers,
    )


async def call_step(definition: StepDefinition, arg: Any, executor: Executor | None) -> Any:
    """Runs a step function: awaited if ``async def``, else in ``executor`` (None: the
    loop's default executor) with the caller's context variables (so ``info()`` and
    ``barrier()`` work in it)."""
    args = (arg,) if definition.arg is not None else ()
    if definition.is_async:
        return await definition.fn(*args)
    context = contextvars.copy_context()
    call = functools.partial(context.run, definition.fn, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


def _retry_status(exc: RetryLater) -> _Failure:
    delay = duration_pb2.Duration()
    delay.FromTimedelta(exc.delay)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION, message=exc.message, details=[detail]
    )
    # What grpc_status.rpc_status.to_status builds, in the form context.abort takes.
    trailer = ((_STATUS_DETAILS_KEY, status.SerializeToString()),)
    return grpc.StatusCode.FAILED_PRECONDITION, exc.message, trailer


def _retry_code(exc: Exception) -> grpc.StatusCode:
    if isinstance(exc, ConnectionError | TimeoutError):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


class StepHandler:
    """The unary handler of ``/<service>/<step>``: the action and its compensation.

    Each call runs inside a SERVER span (child of the TM's attempt span, from the
    call's ``traceparent``) that is current while the step function runs, so spans
    the step starts nest under it.
    """

    def __init__(
        self,
        action: StepDefinition,
        compensation: StepDefinition | None,
        *,
        service: str = "",
        tracer: trace.Tracer | None = None,
        guard: CallGuard | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.action = action
        self._executor = executor
        self.compensation = compensation
        method = f"/{service}/{action.name}"
        self._span_name = method[1:]
        self._attributes = rpc_attributes(method)
        self._tracer = tracer or trace.NoOpTracer()
        self._guard = guard or CallGuard()

    async def handle(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        metadata = tuple(context.invocation_metadata() or ())
        with self._tracer.start_as_current_span(
            self._span_name,
            context=extract_w3c(metadata),
            kind=SpanKind.SERVER,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            outcome = self._refusal(request, metadata, context) or await self._serve(
                request, metadata, context.time_remaining(), span
            )
            if isinstance(outcome, bytes):
                set_code(span, grpc.StatusCode.OK, error=False)
                return outcome
            code, message, _ = outcome
            # RetryLater is the step saying "not yet", not a failure.
            set_code(span, code, message, error=code is not grpc.StatusCode.FAILED_PRECONDITION)
        await context.abort(*outcome)

    def _refusal(
        self,
        request: bytes,
        metadata: Sequence[tuple[str, str | bytes]],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> _Failure | None:
        """Not the TM (signature, TLS identity): refused before the step or its barrier."""
        if not self._guard.active:
            return None
        try:
            info = parse_step_info(metadata, None)
        except ValueError:
            step = (-1, -1)  # not a TM call: cannot carry a valid signature either
        else:
            step = (info.step_index, info.attempt)
        refused = self._guard.refusal(context, metadata, request, step=step)
        return None if refused is None else (*refused, ())

    async def _serve(
        self,
        request: bytes,
        metadata: Sequence[tuple[str, str | bytes]],
        time_remaining: float | None,
        span: Span,
    ) -> bytes | _Failure:
        try:
            step_info = parse_step_info(metadata, time_remaining)
        except ValueError as exc:
            return grpc.StatusCode.INVALID_ARGUMENT, str(exc), ()
        if span.is_recording():
            span.set_attributes(
                {
                    GID: step_info.gid,
                    STEP_INDEX: step_info.step_index,
                    STEP_NAME: step_info.step_name,
                    OP: step_info.op,
                    ATTEMPT: step_info.attempt,
                }
            )
        definition = self.action if step_info.op == "action" else self.compensation
        if definition is None:
            return (
                grpc.StatusCode.UNIMPLEMENTED,
                f"step {self.action.name!r} has no compensation",
                (),
            )
        try:
            arg = definition.arg.decode(request) if definition.arg is not None else None
        except PayloadDecodeError as exc:
            return grpc.StatusCode.ABORTED, f"invalid payload: {exc}", ()
        return await self._run(definition, arg, step_info, span)

    async def _run(
        self, definition: StepDefinition, arg: Any, step_info: StepInfo, span: Span
    ) -> bytes | _Failure:
        """The response bytes, or the failure status to answer with."""
        with step_context(step_info):
            try:
                value = await call_step(definition, arg, self._executor)
                return definition.result.encode(value)
            except StepFailed as exc:
                _log.info("step %s gid=%s failed: %s", step_info.step_name, step_info.gid, exc)
                span.record_exception(exc)
                return grpc.StatusCode.ABORTED, exc.message, ()
            except RetryLater as exc:
                span.add_event("retry later", {"delay_seconds": exc.delay.total_seconds()})
                return _retry_status(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.exception(
                    "step %s (%s) gid=%s attempt %d raised; the TM will retry it",
                    step_info.step_name,
                    step_info.op,
                    step_info.gid,
                    step_info.attempt,
                    extra={"stepping_gid": step_info.gid},
                )
                span.record_exception(exc)
                return _retry_code(exc), f"{type(exc).__name__}: {exc}", ()
