"""The one place where a failed TM call becomes an SDK exception."""

from __future__ import annotations

from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from stepping import contract

from participant_sdk.errors import (
    GidConflict,
    InvalidArgument,
    InvalidState,
    NotResumable,
    PermissionDenied,
    TmError,
    TmUnavailable,
    TransactionNotFound,
    Unauthenticated,
)

__all__ = ["TM_ERROR_DOMAIN", "map_rpc_error"]

TM_ERROR_DOMAIN = contract.ERROR_DOMAIN

_BY_REASON: dict[str, type[TmError]] = {
    contract.REASON_TRANSACTION_NOT_FOUND: TransactionNotFound,
    contract.REASON_GID_CONFLICT: GidConflict,
    contract.REASON_INVALID_STATE: InvalidState,
    contract.REASON_INVALID_ARGUMENT: InvalidArgument,
    contract.REASON_SHUTTING_DOWN: TmUnavailable,
    contract.REASON_STORE_UNAVAILABLE: TmUnavailable,
    contract.REASON_UNAUTHENTICATED: Unauthenticated,
    contract.REASON_PERMISSION_DENIED: PermissionDenied,
    contract.REASON_NOT_RESUMABLE: NotResumable,
}

# Used when the TM (or a proxy in front of it) sent no ErrorInfo.
_BY_CODE: dict[grpc.StatusCode, type[TmError]] = {
    grpc.StatusCode.NOT_FOUND: TransactionNotFound,
    grpc.StatusCode.ALREADY_EXISTS: GidConflict,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidState,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: TmUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: TmUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TmUnavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def _rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(cast(grpc.Call, err))
    except ValueError:  # code or message inconsistent with the detail: ignore it
        return None
    return status


def map_rpc_error(err: grpc.aio.AioRpcError) -> TmError:
    """The SDK exception for a failed TM call (raise it ``from err``)."""
    code = err.code()
    message = err.details() or code.name
    reason = ""
    metadata: dict[str, str] = {}
    field = description = ""
    status = _rich_status(err)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            error_info = error_details_pb2.ErrorInfo()
            detail.Unpack(error_info)
            if error_info.domain == TM_ERROR_DOMAIN:
                reason = error_info.reason
                metadata = dict(error_info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            if bad_request.field_violations:
                field = bad_request.field_violations[0].field
                description = bad_request.field_violations[0].description
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, TmError)
    if cls is InvalidArgument:
        return InvalidArgument(
            message,
            field=field,
            description=description,
            code=code.name,
            reason=reason,
            metadata=metadata,
        )
    return cls(message, code=code.name, reason=reason, metadata=metadata)
