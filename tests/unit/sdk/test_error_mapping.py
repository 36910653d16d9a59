"""TM errors (status + google.rpc details) become SDK exceptions in one place."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from participant_sdk._job import _surely_not_committed
from participant_sdk._rpc_errors import map_rpc_error
from participant_sdk.errors import (
    GidConflict,
    InvalidArgument,
    InvalidState,
    TmError,
    TmUnavailable,
    TransactionNotFound,
)


def _error(
    code: grpc.StatusCode, message: str, *details: object, status_code: int | None = None
) -> grpc.aio.AioRpcError:
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)  # type: ignore[arg-type]
        packed.append(a)
    status = status_pb2.Status(
        code=code.value[0] if status_code is None else status_code, message=message, details=packed
    )
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, message, None)


def _info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain="stepping.tm.v1", metadata=metadata)


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, "ERROR_REASON_TRANSACTION_NOT_FOUND", TransactionNotFound),
        (grpc.StatusCode.ALREADY_EXISTS, "ERROR_REASON_GID_CONFLICT", GidConflict),
        (grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_INVALID_STATE", InvalidState),
        (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_SHUTTING_DOWN", TmUnavailable),
        (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_STORE_UNAVAILABLE", TmUnavailable),
    ],
)
def test_reason_picks_the_class(code: grpc.StatusCode, reason: str, cls: type[TmError]) -> None:
    err = map_rpc_error(
        _error(code, "nope", _info(reason, gid="g1", status="TRANSACTION_STATUS_SUBMITTED"))
    )
    assert type(err) is cls
    assert (err.code, err.reason, err.gid, err.message) == (code.name, reason, "g1", "nope")
    assert err.retryable is (cls is TmUnavailable)
    if isinstance(err, InvalidState):
        assert err.status == "TRANSACTION_STATUS_SUBMITTED"


def test_invalid_argument_names_the_field() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="steps[0].action.method", description="must start with /"
            )
        ]
    )
    err = map_rpc_error(
        _error(grpc.StatusCode.INVALID_ARGUMENT, "bad", _info("ERROR_REASON_INVALID_ARGUMENT"), bad)
    )
    assert isinstance(err, InvalidArgument)
    assert (err.field, err.description) == ("steps[0].action.method", "must start with /")
    assert "INVALID_ARGUMENT" in str(err)


def test_without_details_the_code_decides() -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down", None
    )
    err = map_rpc_error(plain)
    assert type(err) is TmUnavailable and err.reason == "" and err.gid is None
    other = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), "bug", None
    )
    assert type(map_rpc_error(other)) is TmError


def test_foreign_domains_and_inconsistent_details_are_ignored() -> None:
    foreign = error_details_pb2.ErrorInfo(reason="ERROR_REASON_GID_CONFLICT", domain="other")
    err = map_rpc_error(_error(grpc.StatusCode.NOT_FOUND, "x", foreign))
    assert type(err) is TransactionNotFound and err.reason == ""
    mismatch = _error(
        grpc.StatusCode.NOT_FOUND,
        "x",
        _info("ERROR_REASON_GID_CONFLICT"),
        status_code=grpc.StatusCode.INTERNAL.value[0],
    )
    assert type(map_rpc_error(mismatch)) is TransactionNotFound


class _PgError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "invalidated", "surely_failed"),
    [
        ("23505", False, True),  # unique violation at commit (deferred constraint)
        ("40001", False, True),  # serialization failure
        ("08006", False, False),  # connection failure: maybe committed
        ("57P01", False, False),  # admin shutdown
        (None, False, False),  # no server answer
        ("23505", True, False),  # connection invalidated
    ],
)
def test_commit_outcome_classification(
    sqlstate: str | None, invalidated: bool, surely_failed: bool
) -> None:
    exc = sqlalchemy.exc.DBAPIError(
        "COMMIT", None, _PgError(sqlstate), connection_invalidated=invalidated
    )
    assert _surely_not_committed(exc) is surely_failed
    assert _surely_not_committed(ConnectionResetError()) is False
