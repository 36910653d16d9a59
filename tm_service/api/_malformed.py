"""Malformed requests: INVALID_ARGUMENT and one log line per window, not a traceback each.

grpc.aio deserializes a request before any handler or interceptor code runs, and a
``DecodeError`` there becomes UNKNOWN with a logged traceback, once per request: random
bytes sent in a loop flood the log. This interceptor takes the deserializer out of each
unary-request handler and parses inside the call instead, where the failure can be
answered like any other bad input. Stream-request handlers (reflection) are left as
they are.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from tm_service.api._errors import to_status
from tm_service.errors import InvalidArgument

__all__ = ["MalformedRequests", "RateLimitedLog"]

_log = logging.getLogger(__name__)

Ctx = grpc.aio.ServicerContext[Any, Any]

if TYPE_CHECKING:  # generic in the type stubs only
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class RateLimitedLog:
    """At most one warning per ``window`` seconds, counting the events in between."""

    def __init__(
        self, window: float = 60.0, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._monotonic = monotonic
        self._last: float | None = None
        self._count = 0

    def event(self, message: str) -> bool:
        """Count one event; log it (with the count so far) when the window allows."""
        self._count += 1
        now = self._monotonic()
        if self._last is not None and now - self._last < self._window:
            return False
        _log.warning(
            "%d malformed request(s) in the last %.0fs; latest: %s",
            self._count,
            self._window if self._last is not None else 0,
            message,
        )
        self._last, self._count = now, 0
        return True


def _peer(context: Ctx) -> str:
    try:
        return str(context.peer())
    except Exception:  # the peer is for the log only
        return "?"


class MalformedRequests(_Interceptor):
    """Answer requests that do not parse with INVALID_ARGUMENT (field ``request``)."""

    def __init__(self, log: RateLimitedLog | None = None) -> None:
        self._log = log or RateLimitedLog()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        method: str = handler_call_details.method
        parse: Callable[[bytes], Any] = handler.request_deserializer
        if handler.unary_unary is not None:
            kind = "unary_unary"
            behavior = self._parsing(handler.unary_unary, parse, method)
        elif handler.unary_stream is not None:
            kind = "unary_stream"
            behavior = self._parsing_stream(handler.unary_stream, parse, method)
        else:
            return handler
        # RpcMethodHandler is a namedtuple in grpc; the raw bytes reach the behavior.
        replaced: grpc.RpcMethodHandler[Any, Any] = handler._replace(  # type: ignore[attr-defined]
            request_deserializer=None, **{kind: behavior}
        )
        return replaced

    async def _parse(
        self, parse: Callable[[bytes], Any], raw: bytes, method: str, context: Ctx
    ) -> Any:
        try:
            return parse(raw)
        except Exception as exc:  # DecodeError, or whatever a deserializer raises
            self._log.event(f"{method} from {_peer(context)}: {type(exc).__name__}: {exc}")
            err = InvalidArgument("request", f"is not a valid request message for {method}")
            await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]

    def _parsing(self, behavior: Any, parse: Callable[[bytes], Any], method: str) -> Any:
        async def call(raw: bytes, context: Ctx) -> Any:
            request = await self._parse(parse, raw, method, context)
            return await behavior(request, context)

        return call

    def _parsing_stream(self, behavior: Any, parse: Callable[[bytes], Any], method: str) -> Any:
        if not inspect.isasyncgenfunction(behavior):  # writes with context.write (health Watch)
            return self._parsing(behavior, parse, method)

        async def stream(raw: bytes, context: Ctx) -> Any:
            request = await self._parse(parse, raw, method, context)
            async for response in behavior(request, context):
                yield response

        return stream
