"""TmClient: a connection to the TM and the RPCs on it."""

from __future__ import annotations

import os
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, TracerProvider
from stepping import contract
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from participant_sdk._job import Job
from participant_sdk._rpc_errors import map_rpc_error
from participant_sdk._state import JobState, JobStatus, Mode
from participant_sdk._tls_config import TLSConfig
from participant_sdk._tracing import GID, rpc_attributes, set_code, tracer
from participant_sdk._types import Duration, Endpoint, RetryPolicy, to_duration_pb, to_seconds
from participant_sdk.errors import PermissionDenied, TmUnavailable

__all__ = ["TmClient"]

R = TypeVar("R")

_TM_SERVICE = contract.TM_SERVICE

#: The environment variables :meth:`TmClient.connect` reads when given no address/token.
ADDRESS_ENV = "STEPPING_TM_ADDRESS"
TOKEN_ENV = "STEPPING_TM_TOKEN"
DEFAULT_ADDRESS = "127.0.0.1:36790"


class TmClient:
    """A client of the TM. Create it with :meth:`connect`::

        async with TmClient.connect("localhost:36790") as tm:
            job = tm.job()
            job.add_step(endpoint, payload)
            await job.start()

    ``query_prepared`` and ``database`` set the defaults of jobs started inside a
    DB transaction (see :meth:`job`). ``api_key``: a bearer token sent with every
    call as ``authorization: Bearer <api_key>`` (a TM with an auth file).

    Each call is an OpenTelemetry CLIENT span (on ``tracer_provider``, default the
    global one) whose context goes to the TM with the call: the TM stores it with the
    job, so the job's processing and steps join the caller's trace.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout: Duration = 10.0,
        query_prepared: Endpoint | None = None,
        database: str = "",
        tracer_provider: TracerProvider | None = None,
        target: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self._channel = channel
        self._auth = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._tracer = tracer(tracer_provider)
        self._target = target
        self._stub: tm_pb2_grpc.TransactionManagerServiceAsyncStub = (
            tm_pb2_grpc.TransactionManagerServiceStub(channel)
        )
        self.timeout = to_seconds(timeout)
        self.query_prepared = query_prepared
        self.database = database

    @classmethod
    def connect(
        cls,
        target: str | None = None,
        *,
        tls: bool | TLSConfig | grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        timeout: Duration = 10.0,
        query_prepared: Endpoint | None = None,
        database: str = "",
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        lazy: bool = False,
        tracer_provider: TracerProvider | None = None,
    ) -> _Connect:
        """Connects to the TM at ``target`` ("host:port").

        Without ``target``, the address is ``$STEPPING_TM_ADDRESS`` (default
        ``127.0.0.1:36790``); without ``api_key``, the token is ``$STEPPING_TM_TOKEN``
        when set.

        Await it (``tm = await TmClient.connect(...)``, then ``await tm.close()``) or
        use it as an async context manager. ``tls``: None/False for plaintext, True for
        the system's roots, a :class:`TLSConfig` (CA, client certificate for mTLS,
        server name), or channel credentials. ``api_key``: the bearer token of a
        principal in the TM's auth file. ``timeout`` is the deadline of each
        call. Unless ``lazy``, waits up to ``timeout`` for the TM to answer and raises
        :class:`~participant_sdk.errors.TmUnavailable` if it does not.
        ``tracer_provider``: where the calls' spans go (default: the global provider).
        """
        target = target or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS
        if api_key is None:
            api_key = os.environ.get(TOKEN_ENV) or None
        if tls is None or tls is False:
            channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
        elif isinstance(tls, TLSConfig):
            channel = grpc.aio.secure_channel(
                target, tls.credentials(), tls.channel_options(), interceptors=interceptors
            )
        else:
            creds = grpc.ssl_channel_credentials() if tls is True else tls
            channel = grpc.aio.secure_channel(target, creds, interceptors=interceptors)
        client = cls(
            channel,
            timeout=timeout,
            query_prepared=query_prepared,
            database=database,
            tracer_provider=tracer_provider,
            target=target,
            api_key=api_key,
        )
        return _Connect(client, check=not lazy)

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close(None)

    async def __aenter__(self) -> TmClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- jobs -----------------------------------------------------------------
    def job(
        self,
        gid: str | None = None,
        *,
        mode: Mode | str = Mode.MESSAGE,
        retry_policy: RetryPolicy | None = None,
        step_timeout: Duration | None = None,
        check_prepared_after: Duration | None = None,
        deadline: Duration | None = None,
        concurrent: bool = False,
        query_prepared: Endpoint | None = None,
        database: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Job:
        """A new job to fill with :meth:`Job.add_step` and start with :meth:`Job.start`.

        ``gid`` defaults to a fresh random id. ``query_prepared`` (default: the
        client's) is where the TM asks whether the local transaction of
        ``job.start(conn)`` committed, and ``database`` which participant database
        holds its barrier row. ``tags``: labels kept with the job, for searching
        (``list_jobs(tags=...)``).
        """
        options = tm_pb2.TransactionOptions(mode=Mode(mode).to_proto(), concurrent=concurrent)
        if retry_policy is not None:
            options.retry_policy.CopyFrom(retry_policy.to_proto())
        for field, value in (
            ("step_timeout", step_timeout),
            ("check_prepared_after", check_prepared_after),
            ("deadline", deadline),
        ):
            if value is not None:
                getattr(options, field).CopyFrom(to_duration_pb(value))
        return Job(
            self,
            gid,
            options=options,
            query_prepared=query_prepared or self.query_prepared,
            database=self.database if database is None else database,
            tags=tags,
        )

    # -- RPCs -----------------------------------------------------------------
    async def call(
        self, rpc: Callable[..., Awaitable[R]], request: Any, *, rpc_timeout: float | None = None
    ) -> R:
        """Makes one TM call, mapping failures to :class:`~participant_sdk.errors.TmError`.

        ``request`` is a ``stepping.tm.v1`` ``<Method>Request``: the call's span is
        named after it (``stepping.tm.v1.TransactionManagerService/<Method>``).
        """
        method = type(request).__name__.removesuffix("Request")
        outer = otel_context.get_current()
        with self._tracer.start_as_current_span(
            f"{_TM_SERVICE}/{method}",
            kind=SpanKind.CLIENT,
            attributes=rpc_attributes(f"/{_TM_SERVICE}/{method}", self._target),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            gid = getattr(request, "gid", "")
            if gid:
                span.set_attribute(GID, gid)
            # The TM stores the trace context with the job, so its steps join the trace
            # (the caller's own context when no tracer records this span).
            carrier: dict[str, str] = {}
            propagate.inject(carrier, None if span.get_span_context().is_valid else outer)
            try:
                response = await rpc(
                    request,
                    timeout=self.timeout if rpc_timeout is None else rpc_timeout,
                    metadata=(*self._auth, *carrier.items()) or None,
                )
            except grpc.aio.AioRpcError as err:
                mapped = map_rpc_error(err)
                span.record_exception(mapped)
                set_code(span, err.code(), err.details() or "", error=True)
                raise mapped from err
            except grpc.aio.UsageError as err:  # the channel is closed
                span.record_exception(err)
                set_code(span, grpc.StatusCode.UNAVAILABLE, str(err), error=True)
                raise TmUnavailable(str(err), code="UNAVAILABLE") from err
            set_code(span, grpc.StatusCode.OK, error=False)
            new_gid = getattr(response, "gid", "")
            if new_gid and not gid:
                span.set_attribute(GID, new_gid)
            return response

    @property
    def stub(self) -> tm_pb2_grpc.TransactionManagerServiceAsyncStub:
        """The generated stub, for calls the SDK does not wrap."""
        return self._stub

    async def new_gid(self) -> str:
        """A fresh gid from the TM."""
        response = await self.call(self._stub.NewGid, tm_pb2.NewGidRequest())
        return response.gid

    async def get(self, gid: str) -> JobState:
        """The job ``gid`` with its steps; raises ``TransactionNotFound``."""
        response = await self.call(self._stub.GetTransaction, tm_pb2.GetTransactionRequest(gid=gid))
        return JobState.from_proto(response.transaction)

    async def submit(
        self, gid: str, *, wait: bool = False, wait_timeout: Duration | None = None
    ) -> JobState:
        """Submits the prepared job ``gid`` (see also :meth:`Job.submit`)."""
        request = tm_pb2.SubmitRequest(gid=gid)
        return await self.submit_request(request, wait=wait, wait_timeout=wait_timeout)

    async def submit_request(
        self,
        request: tm_pb2.SubmitRequest,
        *,
        wait: bool = False,
        wait_timeout: Duration | None = None,
    ) -> JobState:
        """Sends a ``SubmitRequest`` built by the caller (low-level; :meth:`Job.submit`
        sends one with the job's steps and options).

        With ``wait``, the TM answers with the final state or, after ``wait_timeout``
        (default 30 s), the current one; the call's deadline is extended by that wait.
        """
        timeout = self.timeout
        if wait:
            request.wait_result = True
            wait_seconds = 30.0 if wait_timeout is None else to_seconds(wait_timeout)
            request.wait_timeout.CopyFrom(to_duration_pb(wait_seconds))
            timeout += wait_seconds
        response = await self.call(self._stub.Submit, request, rpc_timeout=timeout)
        return JobState.from_proto(response.transaction)

    async def abort(self, gid: str, *, reason: str = "") -> JobState:
        """Aborts the prepared job ``gid``; raises ``InvalidState`` once it is submitted."""
        response = await self.call(self._stub.Abort, tm_pb2.AbortRequest(gid=gid, reason=reason))
        return JobState.from_proto(response.transaction)

    async def list_jobs(
        self,
        *,
        statuses: Iterable[JobStatus] = (),
        page_size: int = 50,
        page_token: str = "",
        tags: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        gid_prefix: str = "",
        target: str = "",
        method: str = "",
        error_contains: str = "",
        needs_attention: bool = False,
    ) -> tuple[list[JobState], str]:
        """One page of jobs, newest first, and the token of the next page ("" at the end).

        Every filter given must match: ``tags`` (each key with that value),
        ``created_after``/``created_before``, ``gid_prefix``, ``target`` or ``method``
        (of some step's action or compensation), ``error_contains`` (job or step error,
        case-insensitive), ``needs_attention``. Listed jobs carry no step payloads,
        results or history.
        """
        request = tm_pb2.ListTransactionsRequest(
            statuses=[_status_pb(s) for s in statuses],
            page_size=page_size,
            page_token=page_token,
            filter=_filter(
                tags=tags,
                created_after=created_after,
                created_before=created_before,
                gid_prefix=gid_prefix,
                target=target,
                method=method,
                error_contains=error_contains,
                needs_attention=needs_attention,
            ),
        )
        response = await self.call(self._stub.ListTransactions, request)
        return [JobState.from_proto(t) for t in response.transactions], response.next_page_token

    # -- job control (issue 13) -------------------------------------------------
    async def cancel(self, gid: str, *, reason: str = "") -> JobState:
        """Stops the job ``gid``: a saga compensates what ran, other jobs end ABORTED/FAILED
        with ``reason`` as their error and ``cancel_reason``."""
        response = await self.call(self._stub.Cancel, tm_pb2.CancelRequest(gid=gid, reason=reason))
        return JobState.from_proto(response.transaction)

    async def resume(self, gid: str) -> JobState:
        """Runs the FAILED job ``gid`` again from its failed step; raises ``NotResumable``."""
        response = await self.call(self._stub.Resume, tm_pb2.ResumeRequest(gid=gid))
        return JobState.from_proto(response.transaction)

    async def count_jobs(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        gid_prefix: str = "",
        target: str = "",
        method: str = "",
        error_contains: str = "",
        needs_attention: bool = False,
    ) -> dict[JobStatus, int]:
        """How many jobs match the filters (as :meth:`list_jobs`), per status (statuses
        without jobs are absent)."""
        request = tm_pb2.CountTransactionsRequest(
            filter=_filter(
                tags=tags,
                created_after=created_after,
                created_before=created_before,
                gid_prefix=gid_prefix,
                target=target,
                method=method,
                error_contains=error_contains,
                needs_attention=needs_attention,
            )
        )
        response = await self.call(self._stub.CountTransactions, request)
        return {
            JobStatus(
                tm_pb2.TransactionStatus.Name(c.status).removeprefix("TRANSACTION_STATUS_")
            ): (int(c.count))
            for c in response.counts
        }

    async def watch(self, gid: str) -> AsyncGenerator[JobState, None]:
        """The job's state now and after each change, until it is final (then the stream
        ends). Failures raise :class:`~participant_sdk.errors.TmError` as other calls do."""
        call = self._stub.WatchTransaction(
            tm_pb2.WatchTransactionRequest(gid=gid), metadata=self._auth or None
        )
        try:
            async for response in call:
                yield JobState.from_proto(response.transaction)
        except grpc.aio.AioRpcError as err:
            raise map_rpc_error(err) from err
        finally:
            call.cancel()


def _status_pb(status: JobStatus) -> tm_pb2.TransactionStatus.ValueType:
    return tm_pb2.TransactionStatus.Value(f"TRANSACTION_STATUS_{status.value}")


def _filter(
    *,
    tags: Mapping[str, str] | None,
    created_after: datetime | None,
    created_before: datetime | None,
    gid_prefix: str,
    target: str,
    method: str,
    error_contains: str,
    needs_attention: bool,
) -> tm_pb2.TransactionFilter:
    out = tm_pb2.TransactionFilter(
        tags=dict(tags or {}),
        gid_prefix=gid_prefix,
        target=target,
        method=method,
        error_contains=error_contains,
        needs_attention=needs_attention,
    )
    if created_after is not None:
        out.created_after.FromDatetime(created_after)
    if created_before is not None:
        out.created_before.FromDatetime(created_before)
    return out


class _Connect:
    """What :meth:`TmClient.connect` returns: awaitable, or an async context manager."""

    def __init__(self, client: TmClient, *, check: bool) -> None:
        self._client = client
        self._check = check

    async def _ready(self) -> TmClient:
        if self._check:
            try:
                await self._client.new_gid()
            except PermissionDenied:
                pass  # a reader may not ask for gids: the TM answered and knew the caller
            except BaseException:
                await self._client.close()
                raise
        return self._client

    def __await__(self) -> Generator[Any, None, TmClient]:
        return self._ready().__await__()

    async def __aenter__(self) -> TmClient:
        return await self._ready()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.close()
