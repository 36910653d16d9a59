"""A gRPC proxy that forces duplicate deliveries of every step call.

It sits between the TM and a participant. The first time it sees a step call
(gid, step index, op), it forwards it twice at once, drops both answers and tells the
TM UNAVAILABLE ("response lost"), so the TM delivers it again; that third delivery is
forwarded once and its answer returned. Each step thus runs three times, two of them
concurrently: only the barrier keeps its effects to one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import grpc


def _identity(data: bytes) -> bytes:
    return data


class RedeliveringProxy:
    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._channel = grpc.aio.insecure_channel(upstream)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Handler(self),))
        self._seen: set[tuple[str, str, str]] = set()
        self.forwarded: Counter[tuple[str, str]] = Counter()  # (step index, op) -> calls
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> RedeliveringProxy:
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def stop(self) -> None:
        await self._server.stop(0)
        await self._channel.close(None)

    async def _forward(
        self, method: str, request: bytes, metadata: Any, timeout: float | None
    ) -> Any:
        call = self._channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        return await call(request, metadata=metadata, timeout=timeout)

    async def handle(
        self, method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        metadata = tuple(
            (k, v) for k, v in (context.invocation_metadata() or ()) if k != "user-agent"
        )
        md = {k: v for k, v in metadata if isinstance(v, str)}
        key = (
            md.get("stepping-gid", ""),
            md.get("stepping-step-index", ""),
            md.get("stepping-op", ""),
        )
        self.forwarded[(key[1], key[2])] += 1
        timeout = context.time_remaining()
        if key not in self._seen:
            self._seen.add(key)
            self.forwarded[(key[1], key[2])] += 1
            await asyncio.gather(
                self._forward(method, request, metadata, timeout),
                self._forward(method, request, metadata, timeout),
                return_exceptions=True,
            )
            await context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: response lost")
        try:
            return bytes(await self._forward(method, request, metadata, timeout))
        except grpc.aio.AioRpcError as err:
            # aio's trailing metadata holds (key, value) pairs; grpc-stubs types it as
            # the sync API's _Metadatum objects.
            trailers: Any = err.trailing_metadata() or ()
            trailer = tuple((k, v) for k, v in trailers if k.endswith("-bin"))
            await context.abort(err.code(), err.details() or "", trailer)


class _Handler(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # generic in the stubs only
    def __init__(self, proxy: RedeliveringProxy) -> None:
        self._proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = details.method

        async def behaviour(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            return await self._proxy.handle(method, request, context)

        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=_identity, response_serializer=_identity
        )
