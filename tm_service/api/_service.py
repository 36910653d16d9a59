"""The gRPC adapter: TransactionManagerService on top of the use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from stepping.contract import KEY_OP, TRACE_KEYS
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from tm_service.api import _filters
from tm_service.api._convert import Converter, transaction_to_proto
from tm_service.api._errors import grpc_errors, grpc_stream_errors
from tm_service.auth import Authenticator, Principal, peer_identities
from tm_service.domain import TxStatus
from tm_service.errors import InvalidArgument
from tm_service.store import TxFilter
from tm_service.telemetry import current_w3c
from tm_service.usecases import TransactionService

__all__ = ["TransactionManagerServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


def _trace_context(context: Ctx) -> dict[str, str]:
    md = context.invocation_metadata() or ()
    found = {k: v for k, v in md if k in TRACE_KEYS and isinstance(v, str)}
    # A caller that sent none: with TM tracing on, the job's trace starts at this RPC's span.
    return found or current_w3c()


def _refuse_step_calls(context: Ctx) -> None:
    """A Prepare/Submit sent as a TM's step call: the TM never runs itself as a step."""
    if any(k == KEY_OP for k, _ in context.invocation_metadata() or ()):
        raise InvalidArgument(
            f"metadata.{KEY_OP}", "this is a TM's step call; a TM is never a step's target"
        )


class TransactionManagerServicer(tm_pb2_grpc.TransactionManagerServiceServicer):
    """``auth``: resolve each call's principal (None: no auth file, every call allowed)."""

    def __init__(
        self,
        service: TransactionService,
        converter: Converter,
        auth: Authenticator | None = None,
    ) -> None:
        self._svc = service
        self._conv = converter
        self._auth = auth
        self._max_gid_length = service.settings.max_gid_length

    def _who(self, context: Ctx) -> Principal | None:
        if self._auth is None:
            return None
        return self._auth.authenticate(
            context.invocation_metadata() or (), peer_identities(context.auth_context())
        )

    @grpc_errors
    async def NewGid(self, request: tm_pb2.NewGidRequest, context: Ctx) -> tm_pb2.NewGidResponse:
        return tm_pb2.NewGidResponse(gid=self._svc.new_gid(self._who(context)))

    @grpc_errors
    async def Prepare(self, request: tm_pb2.PrepareRequest, context: Ctx) -> tm_pb2.PrepareResponse:
        who = self._who(context)
        _refuse_step_calls(context)
        if not request.HasField("query_prepared"):
            self._conv.gid(request.gid)
            raise InvalidArgument("query_prepared", "is required for Prepare")
        new = self._conv.new_transaction(
            request.gid,
            request.steps,
            request.options,
            query_prepared=request.query_prepared,
            database=request.database,
            trace_context=_trace_context(context),
            tags=request.tags,
        )
        tx = await self._svc.prepare(new, who)
        return tm_pb2.PrepareResponse(transaction=transaction_to_proto(tx))

    @grpc_errors
    async def Submit(self, request: tm_pb2.SubmitRequest, context: Ctx) -> tm_pb2.SubmitResponse:
        who = self._who(context)
        _refuse_step_calls(context)
        gid = self._conv.gid(request.gid)
        new = None
        if request.steps:
            new = self._conv.new_transaction(
                gid,
                request.steps,
                request.options,
                query_prepared=None,
                database="",
                trace_context=_trace_context(context),
                tags=request.tags,
            )
        wait_timeout = self._conv.wait_timeout(
            request.wait_timeout if request.HasField("wait_timeout") else None,
            context.time_remaining(),
        )
        tx = await self._svc.submit(
            gid, new, wait=request.wait_result, wait_timeout=wait_timeout, who=who
        )
        return tm_pb2.SubmitResponse(transaction=transaction_to_proto(tx))

    @grpc_errors
    async def Abort(self, request: tm_pb2.AbortRequest, context: Ctx) -> tm_pb2.AbortResponse:
        who = self._who(context)
        tx = await self._svc.abort(
            self._conv.gid(request.gid), self._conv.reason(request.reason), who
        )
        return tm_pb2.AbortResponse(transaction=transaction_to_proto(tx))

    @grpc_errors
    async def GetTransaction(
        self, request: tm_pb2.GetTransactionRequest, context: Ctx
    ) -> tm_pb2.GetTransactionResponse:
        who = self._who(context)
        tx = await self._svc.get(self._conv.gid(request.gid), who)
        return tm_pb2.GetTransactionResponse(transaction=transaction_to_proto(tx, detail=True))

    @grpc_errors
    async def ListTransactions(
        self, request: tm_pb2.ListTransactionsRequest, context: Ctx
    ) -> tm_pb2.ListTransactionsResponse:
        who = self._who(context)
        statuses = _filters.statuses(request.statuses)
        txs, token = await self._svc.list(
            statuses=statuses,
            page_size=request.page_size,
            page_token=request.page_token,
            who=who,
            filter=self._filter(request.filter, statuses),
        )
        return tm_pb2.ListTransactionsResponse(
            transactions=[transaction_to_proto(t) for t in txs], next_page_token=token
        )

    # -- job control (issue 13) ---------------------------------------------------
    @grpc_errors
    async def Cancel(self, request: tm_pb2.CancelRequest, context: Ctx) -> tm_pb2.CancelResponse:
        who = self._who(context)
        tx = await self._svc.cancel(
            self._conv.gid(request.gid), self._conv.reason(request.reason), who
        )
        return tm_pb2.CancelResponse(transaction=transaction_to_proto(tx))

    @grpc_errors
    async def Resume(self, request: tm_pb2.ResumeRequest, context: Ctx) -> tm_pb2.ResumeResponse:
        who = self._who(context)
        tx = await self._svc.resume(self._conv.gid(request.gid), who)
        return tm_pb2.ResumeResponse(transaction=transaction_to_proto(tx))

    @grpc_stream_errors
    async def WatchTransaction(
        self, request: tm_pb2.WatchTransactionRequest, context: Ctx
    ) -> AsyncIterator[tm_pb2.WatchTransactionResponse]:
        """Server stream: the job now, then after each change, until it is final."""
        who = self._who(context)
        gid = self._conv.gid(request.gid)
        async for tx in self._svc.watch(gid, who):
            yield tm_pb2.WatchTransactionResponse(transaction=transaction_to_proto(tx, detail=True))

    # The other job-control RPCs land with their use cases; until then they answer
    # UNIMPLEMENTED, as any server without them would.

    # -- search and retention (issue 13) ------------------------------------------------
    def _filter(self, f: tm_pb2.TransactionFilter, statuses: tuple[TxStatus, ...] = ()) -> TxFilter:
        return _filters.transaction_filter(
            f, statuses_=statuses, max_gid_length=self._max_gid_length
        )

    @grpc_errors
    async def CountTransactions(
        self, request: tm_pb2.CountTransactionsRequest, context: Ctx
    ) -> tm_pb2.CountTransactionsResponse:
        who = self._who(context)
        if request.at_most < 0:
            raise InvalidArgument("at_most", "must be 0 (count all) or positive")
        at_most = request.at_most
        counts = await self._svc.count(self._filter(request.filter), who, at_most=at_most)
        capped = {s for s, n in counts.items() if at_most and n > at_most}
        return tm_pb2.CountTransactionsResponse(
            counts=[
                tm_pb2.StatusCount(status=int(s), count=n, capped=s in capped)  # type: ignore[arg-type]
                for s, n in sorted(counts.items())
            ],
            total=sum(counts.values()),
            capped=bool(capped),
        )

    @grpc_errors
    async def PurgeTransactions(
        self, request: tm_pb2.PurgeTransactionsRequest, context: Ctx
    ) -> tm_pb2.PurgeTransactionsResponse:
        who = self._who(context)
        older_than, statuses = _filters.purge_request(
            request.older_than if request.HasField("older_than") else None, request.statuses
        )
        deleted = await self._svc.purge(
            older_than=older_than, statuses=statuses, dry_run=request.dry_run, who=who
        )
        return tm_pb2.PurgeTransactionsResponse(deleted=deleted)
