"""The one place where the TM's errors become gRPC statuses (with rich error details)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from stepping.contract import ERROR_DOMAIN

from tm_service.errors import (
    BusinessFailure,
    Busy,
    Conflict,
    InvalidArgument,
    InvalidState,
    NotFound,
    NotResumable,
    PermissionDenied,
    SearchTooSlow,
    ShuttingDown,
    StoreUnavailable,
    TmError,
    Unauthenticated,
)

__all__ = ["DOMAIN", "grpc_errors", "grpc_stream_errors", "to_status"]

_log = logging.getLogger(__name__)

DOMAIN = ERROR_DOMAIN

_CODES: dict[type[TmError], int] = {
    InvalidArgument: code_pb2.INVALID_ARGUMENT,
    NotFound: code_pb2.NOT_FOUND,
    Conflict: code_pb2.ALREADY_EXISTS,
    InvalidState: code_pb2.FAILED_PRECONDITION,
    NotResumable: code_pb2.FAILED_PRECONDITION,
    ShuttingDown: code_pb2.UNAVAILABLE,
    StoreUnavailable: code_pb2.UNAVAILABLE,
    Unauthenticated: code_pb2.UNAUTHENTICATED,
    PermissionDenied: code_pb2.PERMISSION_DENIED,
    Busy: code_pb2.RESOURCE_EXHAUSTED,
    SearchTooSlow: code_pb2.DEADLINE_EXCEEDED,
    BusinessFailure: code_pb2.ABORTED,
}


def to_status(err: TmError) -> grpc.Status:
    """A TmError as a grpc.Status carrying ErrorInfo (and BadRequest for bad fields)."""
    code = _CODES.get(type(err), code_pb2.INTERNAL)
    metadata = dict(err.metadata)
    if err.gid:
        metadata["gid"] = err.gid
    details = [error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=metadata)]
    if isinstance(err, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=err.field, description=err.description
                    )
                ]
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return rpc_status.to_status(status_pb2.Status(code=code, message=err.message, details=packed))


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: Exception, name: str) -> None:
    """End the call for ``err`` (call from its ``except``): a TmError's own status, else
    INTERNAL, logged with its traceback."""
    if isinstance(err, TmError):
        await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]
    _log.exception("unexpected error in %s", name)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the TM's log")


def grpc_errors(handler: Handler) -> Handler:
    """Wrap a servicer method: TmError → its status; anything else → INTERNAL, logged."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await _abort(context, err, handler.__name__)

    return wrapper  # type: ignore[return-value]


StreamHandler = TypeVar("StreamHandler", bound=Callable[..., AsyncIterator[Any]])


def grpc_stream_errors(handler: StreamHandler) -> StreamHandler:
    """``grpc_errors`` for a server-streaming method (an async generator)."""

    @functools.wraps(handler)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for item in handler(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await _abort(context, err, handler.__name__)

    return wrapper  # type: ignore[return-value]
