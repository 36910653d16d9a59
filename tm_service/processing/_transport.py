"""Calls to participants: the one-method transport interface and its gRPC implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from tm_service.domain import Endpoint

__all__ = ["CallResult", "GrpcTransport", "Transport"]


@dataclass(frozen=True, slots=True)
class CallResult:
    """How a participant answered: a status code, the raw response and the details."""

    code: grpc.StatusCode
    response: bytes = b""
    details: str = ""

    @property
    def error_text(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name


class Transport(Protocol):
    """Sends raw bytes to a unary gRPC method and reports the answer; never raises."""

    async def call(
        self,
        endpoint: Endpoint,
        payload: bytes,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float,
    ) -> CallResult: ...

    async def close(self) -> None: ...


def _identity(b: bytes) -> bytes:
    return b


class GrpcTransport:
    """grpc.aio transport; one channel per target, reused for every call."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._methods: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}

    def _callable(self, endpoint: Endpoint) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        key = (endpoint.target, endpoint.method)
        method = self._methods.get(key)
        if method is None:
            channel = self._channels.get(endpoint.target)
            if channel is None:
                channel = grpc.aio.insecure_channel(endpoint.target)
                self._channels[endpoint.target] = channel
            method = channel.unary_unary(
                endpoint.method, request_serializer=_identity, response_deserializer=_identity
            )
            self._methods[key] = method
        return method

    async def call(
        self,
        endpoint: Endpoint,
        payload: bytes,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float,
    ) -> CallResult:
        try:
            response = await self._callable(endpoint)(
                payload, metadata=tuple(metadata), timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            return CallResult(err.code(), b"", err.details() or "")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bad target, a closed channel: retry like UNAVAILABLE
            return CallResult(grpc.StatusCode.UNAVAILABLE, b"", f"{type(err).__name__}: {err}")
        return CallResult(grpc.StatusCode.OK, bytes(response))

    async def close(self) -> None:
        channels, self._channels, self._methods = self._channels, {}, {}
        await asyncio.gather(*(c.close() for c in channels.values()), return_exceptions=True)
