"""Calls to participants: the one-method transport interface and its gRPC implementation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from stepping.contract import CallInfo

from tm_service.domain import Endpoint

__all__ = ["CallInfo", "CallResult", "GrpcTransport", "Transport"]

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class CallResult:
    """How a participant answered: a status code, the raw response and the details."""

    code: grpc.StatusCode
    response: bytes = b""
    details: str = ""
    # The participant's own hint (google.rpc.RetryInfo), when it sent one.
    retry_after: float | None = None
    # Retrying cannot help (the response is over the TM's limit): the step fails for good.
    permanent: bool = False

    @property
    def error_text(self) -> str:
        if not self.details:
            return self.code.name
        # Stored as text: Postgres rejects NUL characters, so a participant's text
        # must not be able to make the write fail.
        return f"{self.code.name}: {self.details}".replace("\x00", "\\0")


class Transport(Protocol):
    """Sends raw bytes to a unary gRPC method and reports the answer; never raises.

    ``info`` says what the call is (the job, the step, the op); the transport sends it
    as the step contract's metadata (``info.metadata()``).
    """

    async def call(
        self, endpoint: Endpoint, payload: bytes, *, info: CallInfo, timeout: float
    ) -> CallResult: ...

    async def close(self) -> None: ...


def _identity(b: bytes) -> bytes:
    return b


def _retry_after(err: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay in the call's rich status details, if any."""
    trailers: Any = err.trailing_metadata() or ()
    for key, value in trailers:
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                seconds: float = info.retry_delay.ToTimedelta().total_seconds()
                return max(seconds, 0.0)
    return None


# grpc's own text when a channel refuses a response over its max_receive_message_length.
_TOO_LARGE = "CLIENT: Received message larger than max"


class GrpcTransport:
    """grpc.aio transport; one channel per target, reused for every call.

    A response larger than ``max_response_bytes`` is refused by the channel (the
    ``STEPPING_MAX_RESPONSE_BYTES`` limit) and reported as a permanent failure.
    """

    def __init__(self, *, max_response_bytes: int = 1 << 20) -> None:
        self._options = [("grpc.max_receive_message_length", max_response_bytes)]
        self._max_response_bytes = max_response_bytes
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._methods: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}

    def _callable(self, endpoint: Endpoint) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        key = (endpoint.target, endpoint.method)
        method = self._methods.get(key)
        if method is None:
            channel = self._channels.get(endpoint.target)
            if channel is None:
                channel = grpc.aio.insecure_channel(endpoint.target, options=self._options)
                self._channels[endpoint.target] = channel
            method = channel.unary_unary(
                endpoint.method, request_serializer=_identity, response_deserializer=_identity
            )
            self._methods[key] = method
        return method

    async def call(
        self, endpoint: Endpoint, payload: bytes, *, info: CallInfo, timeout: float
    ) -> CallResult:
        try:
            response = await self._callable(endpoint)(
                payload, metadata=tuple(info.metadata()), timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            details = err.details() or ""
            if err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in details:
                return CallResult(
                    err.code(),
                    details=f"the response is larger than the TM's limit of "
                    f"{self._max_response_bytes} bytes (STEPPING_MAX_RESPONSE_BYTES): {details}",
                    permanent=True,
                )
            return CallResult(err.code(), b"", details, _retry_after(err))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bad target, a closed channel: retry like UNAVAILABLE
            return CallResult(grpc.StatusCode.UNAVAILABLE, b"", f"{type(err).__name__}: {err}")
        return CallResult(grpc.StatusCode.OK, bytes(response))

    async def close(self) -> None:
        channels, self._channels, self._methods = self._channels, {}, {}
        await asyncio.gather(*(c.close(None) for c in channels.values()), return_exceptions=True)
