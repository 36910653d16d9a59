"""Serving one step call: metadata → StepInfo, payload → argument, outcome → status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from participant_sdk._codec import PayloadDecodeError
from participant_sdk._info import Op, StepInfo, step_context
from participant_sdk._step import StepDefinition
from participant_sdk.errors import RetryLater, StepFailed

__all__ = ["StepHandler", "parse_step_info"]

_log = logging.getLogger("participant_sdk")

_PREFIX = "stepping-"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_TRANSPORT_KEYS = frozenset({"user-agent", ":authority", "content-type", "te"})

# A failed call: status code, message, trailing metadata (for rich status details).
_Failure = tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]


def parse_step_info(
    metadata: Sequence[tuple[str, str | bytes]], time_remaining: float | None
) -> StepInfo:
    """Builds the StepInfo of a call from its metadata; ValueError if it is not a TM call."""
    own: dict[str, str] = {}
    headers: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, bytes) or key in _TRANSPORT_KEYS or key.startswith("grpc-"):
            continue  # "-bin" and transport keys are not step headers
        (own if key.startswith(_PREFIX) else headers)[key] = value
    gid = own.get("stepping-gid")
    if not gid:
        raise ValueError("missing stepping-gid metadata: steps are called by the TM")
    op = own.get("stepping-op", "action")
    if op not in ("action", "compensate"):
        raise ValueError(f"unknown stepping-op {op!r}")
    op_: Op = "compensate" if op == "compensate" else "action"
    try:
        index = int(own.get("stepping-step-index", "0"))
        attempt = int(own.get("stepping-attempt", "1"))
    except ValueError:
        raise ValueError("stepping-step-index and stepping-attempt must be integers") from None
    deadline = (
        None
        if time_remaining is None
        else datetime.now(UTC) + timedelta(seconds=max(0.0, time_remaining))
    )
    return StepInfo(
        gid=gid,
        step_index=index,
        step_name=own.get("stepping-step-name", ""),
        op=op_,
        attempt=attempt,
        deadline=deadline,
        headers=headers,
    )


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
    """The unary handler of ``/<service>/<step>``: the action and its compensation."""

    def __init__(self, action: StepDefinition, compensation: StepDefinition | None) -> None:
        self.action = action
        self.compensation = compensation

    async def handle(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        try:
            step_info = parse_step_info(
                tuple(context.invocation_metadata() or ()), context.time_remaining()
            )
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        definition = self.action if step_info.op == "action" else self.compensation
        if definition is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"step {self.action.name!r} has no compensation"
            )
        try:
            arg = definition.arg.decode(request) if definition.arg is not None else None
        except PayloadDecodeError as exc:
            await context.abort(grpc.StatusCode.ABORTED, f"invalid payload: {exc}")

        outcome = await self._run(definition, arg, step_info)
        if isinstance(outcome, bytes):
            return outcome
        await context.abort(*outcome)

    async def _run(
        self, definition: StepDefinition, arg: Any, step_info: StepInfo
    ) -> bytes | _Failure:
        """The response bytes, or the failure status to answer with."""
        with step_context(step_info):
            try:
                value = await (
                    definition.fn(arg) if definition.arg is not None else definition.fn()
                )
                return definition.result.encode(value)
            except StepFailed as exc:
                _log.info("step %s gid=%s failed: %s", step_info.step_name, step_info.gid, exc)
                return grpc.StatusCode.ABORTED, exc.message, ()
            except RetryLater as exc:
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
                return _retry_code(exc), f"{type(exc).__name__}: {exc}", ()
