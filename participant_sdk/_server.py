"""ParticipantServer: serves steps, QueryPrepared and health on grpc.aio."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine
from stepping import contract
from stepping.participant.v1 import participant_pb2

from participant_sdk._barrier import query_prepared
from participant_sdk._guard import CallGuard, ServerTls
from participant_sdk._handler import StepHandler
from participant_sdk._step import StepDefinition, step_definition
from participant_sdk._tracing import GID, OP, extract_w3c, rpc_attributes, set_code, tracer
from participant_sdk._types import QUERY_PREPARED_METHOD, Endpoint

__all__ = ["ParticipantServer"]

_log = logging.getLogger("participant_sdk")


#: Threads of the default ``step_executor`` (plain ``def`` steps running at once).
_DEFAULT_STEP_THREADS = 32


def _identity(data: bytes) -> bytes:
    return data


class _QueryPrepared:
    """The standard back-check, served on the raw request bytes (the signature is over them)."""

    def __init__(
        self, databases: Mapping[str, AsyncEngine], tracer: trace.Tracer, guard: CallGuard
    ) -> None:
        self._databases = databases
        self._tracer = tracer
        self._guard = guard
        self._attributes = {**rpc_attributes(QUERY_PREPARED_METHOD), OP: contract.OP_QUERY_PREPARED}

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            contract.PARTICIPANT_SERVICE,
            {
                QUERY_PREPARED_METHOD.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
                    self.handle,
                    request_deserializer=_identity,
                    response_serializer=participant_pb2.QueryPreparedResponse.SerializeToString,
                )
            },
        )

    async def handle(
        self, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> participant_pb2.QueryPreparedResponse:
        refused = self._guard.refusal(
            context, tuple(context.invocation_metadata() or ()), raw, step=None
        )
        if refused is not None:
            await context.abort(*refused)
        try:
            request = participant_pb2.QueryPreparedRequest.FromString(raw)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a QueryPreparedRequest")
        return await self.query_prepared(request, context)

    async def query_prepared(
        self,
        request: participant_pb2.QueryPreparedRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> participant_pb2.QueryPreparedResponse:
        with self._tracer.start_as_current_span(
            QUERY_PREPARED_METHOD[1:],
            context=extract_w3c(context.invocation_metadata() or ()),
            kind=SpanKind.SERVER,
            attributes={**self._attributes, GID: request.gid},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            name = request.database or "default"
            engine = self._databases.get(name)
            if engine is None and not request.database and len(self._databases) == 1:
                engine = next(iter(self._databases.values()))
            if engine is None:
                set_code(span, grpc.StatusCode.NOT_FOUND, f"no database {name!r}", error=True)
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no database named {name!r}")
            try:
                outcome = await query_prepared(engine, request.gid)
            except Exception as exc:  # the TM asks again later
                _log.exception("QueryPrepared gid=%s on %r failed", request.gid, name)
                span.record_exception(exc)
                set_code(span, grpc.StatusCode.UNAVAILABLE, str(exc), error=True)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}")
            span.set_attribute("stepping.prepared.outcome", outcome)
            set_code(span, grpc.StatusCode.OK, error=False)
        return participant_pb2.QueryPreparedResponse(
            outcome=participant_pb2.PREPARED_OUTCOME_COMMITTED
            if outcome == "committed"
            else participant_pb2.PREPARED_OUTCOME_ROLLED_BACK
        )


class ParticipantServer:
    """A gRPC server for a participant's steps.

    Each ``@step`` function in ``steps`` is served at ``/<service>/<step name>`` (its
    ``@compensation``, if listed too, at the same method for ``stepping-op:
    compensate``). With ``databases``, the standard
    ``stepping.participant.v1.ParticipantService/QueryPrepared`` answers the TM's
    back-check from the barrier table of the database the request names (an engine
    given alone is ``"default"``). The gRPC health service is always served.

    Only the TM may call it, when told how to know the TM: with ``signing_key`` (the
    TM's ``STEPPING_PARTICIPANT_SIGNING_KEY_FILE`` contents, bytes or str) a call
    without a valid ``stepping-signature`` is refused with UNAUTHENTICATED; with
    ``tls=ServerTls(..., client_ca=...)`` and ``tm_identities`` (URI SAN, DNS SAN or CN
    of the TM's client certificate) any other client gets PERMISSION_DENIED. Both are
    checked before a step, its barrier or QueryPrepared runs.

    Each step call (and QueryPrepared) is an OpenTelemetry SERVER span, child of the
    TM's attempt span, current while the step runs: ``tracer.start_as_current_span``
    in a step nests under it. Spans go to ``tracer_provider`` (default: the global one).

    Plain ``def`` steps run in ``step_executor`` (default: a pool of 32 threads owned
    and shut down by the server; pass your own ``ThreadPoolExecutor`` to size it).

    Use it as an async context manager, or call :meth:`start` and :meth:`stop`::

        async with ParticipantServer(steps=[debit], service="bank.v1.Bank", port=50061):
            await asyncio.Event().wait()
    """

    def __init__(
        self,
        *,
        steps: Sequence[Callable[..., Any]] = (),
        service: str | None = None,
        host: str = "0.0.0.0",
        port: int = 0,
        databases: AsyncEngine | Mapping[str, AsyncEngine] | None = None,
        advertised_host: str | None = None,
        grace: float = 5.0,
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
        credentials: grpc.ServerCredentials | None = None,
        tls: ServerTls | None = None,
        signing_key: bytes | str | None = None,
        tm_identities: Sequence[str] = (),
        tracer_provider: TracerProvider | None = None,
        step_executor: Executor | None = None,
    ) -> None:
        if steps and not service:
            raise ValueError("service is required to serve steps (e.g. 'orders.v1.Orders')")
        if credentials is not None and tls is not None:
            raise ValueError("give credentials or tls, not both")
        if tm_identities and (credentials is None if tls is None else tls.client_ca is None):
            # Without a verified client certificate there is no identity to compare.
            raise ValueError("tm_identities needs tls=ServerTls(..., client_ca=...) (mTLS)")
        if tls is not None:
            credentials = tls.credentials()
        self.service = service or ""
        self._tracer = tracer(tracer_provider)
        self._guard = CallGuard(signing_key=signing_key, tm_identities=tm_identities)
        definitions = [step_definition(fn) for fn in steps]
        self._own_executor: ThreadPoolExecutor | None = None
        if step_executor is None and not all(d.is_async for d in definitions):
            # Plain def steps block: they get threads of their own, not the loop's.
            step_executor = self._own_executor = ThreadPoolExecutor(
                max_workers=_DEFAULT_STEP_THREADS, thread_name_prefix="stepping-step"
            )
        self._handlers = _handlers(
            definitions,
            service=self.service,
            tracer=self._tracer,
            guard=self._guard,
            executor=step_executor,
        )
        self._databases: dict[str, AsyncEngine] = (
            {"default": databases} if isinstance(databases, AsyncEngine) else dict(databases or {})
        )
        self._host = host
        self._port = port
        self._advertised_host = advertised_host or (
            "127.0.0.1" if host in ("", "0.0.0.0", "[::]", "::") else host
        )
        self._grace = grace
        self._interceptors = tuple(interceptors)
        self._credentials = credentials
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]  # not in the stubs

    # -- addresses ------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (known after :meth:`start` when created with port 0)."""
        if self._port == 0:
            raise RuntimeError("the server is not started yet")
        return self._port

    @property
    def target(self) -> str:
        """``"host:port"`` for clients and the TM (``advertised_host`` and the port)."""
        return f"{self._advertised_host}:{self.port}"

    @property
    def step_names(self) -> list[str]:
        """The names of the served steps."""
        return list(self._handlers)

    def endpoint(self, step: str | Callable[..., Any]) -> Endpoint:
        """The endpoint of a served step (by name or function), for ``job.add_step``."""
        endpoint = Endpoint.for_step(self.target, self.service, step)
        if endpoint.method.rsplit("/", 1)[1] not in self._handlers:
            raise KeyError(f"this server does not serve step {endpoint.method!r}")
        return endpoint

    @property
    def query_prepared_endpoint(self) -> Endpoint:
        """The endpoint of this server's QueryPrepared, for ``tm.job(query_prepared=...)``."""
        if not self._databases:
            raise RuntimeError("QueryPrepared is served only with databases=...")
        return Endpoint(self.target, QUERY_PREPARED_METHOD)

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Binds the port and starts serving."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = grpc.aio.server(interceptors=self._interceptors)
        if self._handlers:
            server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        self.service,
                        {
                            name: grpc.unary_unary_rpc_method_handler(
                                handler.handle,
                                request_deserializer=_identity,
                                response_serializer=_identity,
                            )
                            for name, handler in self._handlers.items()
                        },
                    ),
                )
            )
        if self._databases:
            server.add_generic_rpc_handlers(
                (_QueryPrepared(self._databases, self._tracer, self._guard).handler(),)
            )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        address = f"{self._host}:{self._port}"
        if self._credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, self._credentials)
        await server.start()
        self._server, self._port = server, bound
        for name in {"", self.service, contract.PARTICIPANT_SERVICE if self._databases else ""}:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info("participant %s serving %s on %s", self.service, self.step_names, self.target)

    async def stop(self, grace: float | None = None) -> None:
        """Reports NOT_SERVING, lets running calls finish for ``grace`` seconds, stops."""
        server, self._server = self._server, None
        if server is None:
            return
        await self._health.enter_graceful_shutdown()
        await server.stop(self._grace if grace is None else grace)
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=False, cancel_futures=True)

    async def wait_for_termination(self) -> None:
        """Waits until the server stops."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> ParticipantServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _handlers(
    definitions: Sequence[StepDefinition],
    *,
    service: str,
    tracer: trace.Tracer,
    guard: CallGuard,
    executor: Executor | None,
) -> dict[str, StepHandler]:
    actions: dict[str, StepDefinition] = {}
    compensations: dict[str, StepDefinition] = {}
    for d in definitions:
        table = actions if d.kind == "step" else compensations
        if d.name in table:
            raise ValueError(f"two {d.kind}s named {d.name!r}")
        table[d.name] = d
    unknown = set(compensations) - set(actions)
    if unknown:
        raise ValueError(f"compensations for steps that are not served: {sorted(unknown)}")
    return {
        name: StepHandler(
            d,
            compensations.get(name),
            service=service,
            tracer=tracer,
            guard=guard,
            executor=executor,
        )
        for name, d in actions.items()
    }
