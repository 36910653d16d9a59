"""SERVER spans for the TM's own RPCs: a grpc.aio interceptor, installed only when tracing.

The parent comes from the caller's W3C ``traceparent``; the span is current while the
servicer runs. Health checks and reflection are not traced (probes would flood traces).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from tm_service.telemetry._attributes import (
    GID,
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
    SERVER_PORT,
    extract_w3c,
    split_method,
)

__all__ = ["ServerSpans"]

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]

if TYPE_CHECKING:  # generic in the type stubs only
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class ServerSpans(_Interceptor):
    """A SERVER span for each unary call of the services named in ``services``."""

    def __init__(self, tracer: Tracer, services: tuple[str, ...]) -> None:
        self._tracer = tracer
        self._prefixes = tuple(f"/{s}/" for s in services)
        self.port: int | None = None  # set once the server is bound

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith(self._prefixes):
            return handler
        metadata = handler_call_details.invocation_metadata
        behavior: Behavior = handler.unary_unary  # type: ignore[assignment]  # the aio kind
        return grpc.unary_unary_rpc_method_handler(
            self._traced(behavior, method, tuple(metadata or ())),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _traced(self, behavior: Behavior, method: str, metadata: tuple[Any, ...]) -> Behavior:
        service, name = split_method(method)
        attributes: dict[str, Any] = {RPC_SYSTEM: "grpc", RPC_SERVICE: service, RPC_METHOD: name}
        if self.port is not None:
            attributes[SERVER_PORT] = self.port

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self._tracer.start_as_current_span(
                f"{service}/{name}",
                context=extract_w3c(metadata),
                kind=SpanKind.SERVER,
                attributes=attributes,
                set_status_on_exception=False,
            ) as span:
                gid: str = getattr(request, "gid", "")
                if gid:
                    span.set_attribute(GID, gid)
                try:
                    response = await behavior(request, context)
                except grpc.aio.AbortError:
                    _set_code(span, context.code(), context.details())
                    raise
                except Exception as exc:
                    _set_code(span, grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
                    raise
                new_gid: str = getattr(response, "gid", "")
                if new_gid and not gid:
                    span.set_attribute(GID, new_gid)  # NewGid
                _set_code(span, context.code(), context.details())
                return response

        return traced


def _set_code(span: Any, code: grpc.StatusCode | None, details: Any) -> None:
    code = code or grpc.StatusCode.OK
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(StatusCode.ERROR, f"{code.name}: {details}" if details else code.name)
