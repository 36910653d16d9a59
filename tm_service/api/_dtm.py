"""``dtmgimp.Dtm``: DTM's gRPC API on top of the same use cases (issue 17).

A DTM request becomes the same validated ``NewTransaction`` a stepping request does
(the ``Converter`` checks every field), stored with ``protocol = "dtm"`` so the
processor talks to its branches in DTM's dialect (``processing._dialect``).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import grpc
from dtmgimp import dtmgimp_pb2, dtmgimp_pb2_grpc
from google.protobuf import empty_pb2
from google.protobuf.duration_pb2 import Duration
from stepping import dtm_contract as dtm
from stepping.tm.v1 import tm_pb2

from tm_service.api._convert import Converter
from tm_service.api._errors import grpc_errors
from tm_service.api._service import TransactionManagerServicer, _refuse_step_calls, _trace_context
from tm_service.config import Settings
from tm_service.domain import NewTransaction, TxStatus
from tm_service.errors import BusinessFailure, InvalidArgument
from tm_service.usecases import TransactionService

__all__ = ["DtmServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]

_MODES = {dtm.TRANS_MSG: tm_pb2.MODE_MESSAGE, dtm.TRANS_SAGA: tm_pb2.MODE_SAGA}
_FAILED = (TxStatus.FAILED, TxStatus.ABORTED)


def _secs(value: int) -> Duration:
    return Duration(seconds=value)


def _endpoint(url: object, field: str) -> tm_pb2.Endpoint:
    """``host:port/pkg.Service/Method``, split at the first ``/``."""
    if not isinstance(url, str) or "/" not in url:
        raise InvalidArgument(field, "must be a URL host:port/package.Service/Method")
    target, _, method = url.partition("/")
    return tm_pb2.Endpoint(target=target, method="/" + method)


class DtmServicer(dtmgimp_pb2_grpc.DtmServicer):
    """``main``: the stepping servicer, whose principal handling (``_who``) is reused."""

    def __init__(
        self,
        service: TransactionService,
        converter: Converter,
        settings: Settings,
        main: TransactionManagerServicer,
    ) -> None:
        self._svc = service
        self._conv = converter
        self._s = settings
        self._main = main

    def _refuse_branch_calls(self, context: Ctx) -> None:
        _refuse_step_calls(context)
        if any(k == dtm.KEY_OP for k, _ in context.invocation_metadata() or ()):
            raise InvalidArgument(
                f"metadata.{dtm.KEY_OP}", "this is a TM's branch call; a TM is never a branch"
            )

    def _new(
        self, request: dtmgimp_pb2.DtmRequest, context: Ctx, *, prepare: bool
    ) -> NewTransaction:
        mode = _MODES.get(request.TransType)
        if mode is None:
            raise InvalidArgument(
                "TransType", f"{request.TransType!r}: this TM serves msg and saga"
            )
        try:
            raw = json.loads(request.Steps or "[]")
        except ValueError:
            raise InvalidArgument("Steps", "is not JSON") from None
        if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
            raise InvalidArgument("Steps", "must be a JSON array of objects")
        payloads = list(request.BinPayloads)
        if payloads and len(payloads) != len(raw):
            raise InvalidArgument(
                "BinPayloads", f"has {len(payloads)} payloads for {len(raw)} steps"
            )
        o = request.TransOptions
        headers = {k.lower(): v for k, v in o.BranchHeaders.items()}
        steps = []
        for i, s in enumerate(raw):
            step = tm_pb2.Step(
                name=f"branch-{dtm.branch_id(i)}",
                action=_endpoint(s.get("action"), f"Steps[{i}].action"),
                payload=payloads[i] if payloads else b"",
                headers=headers,
            )
            if mode == tm_pb2.MODE_SAGA and s.get("compensate"):
                step.compensation.CopyFrom(_endpoint(s["compensate"], f"Steps[{i}].compensate"))
            steps.append(step)
        options = tm_pb2.TransactionOptions(
            mode=mode,
            step_timeout=_secs(o.RequestTimeout)
            if o.RequestTimeout > 0
            else Duration(seconds=int(dtm.DEFAULT_REQUEST_TIMEOUT)),
        )
        if o.TimeoutToFail > 0:
            options.check_prepared_after.CopyFrom(_secs(o.TimeoutToFail))
        if o.RetryInterval > 0:
            maximum = max(self._s.default_maximum_interval_seconds, float(o.RetryInterval))
            options.retry_policy.initial_interval.CopyFrom(_secs(o.RetryInterval))
            options.retry_policy.backoff_coefficient = 2.0
            options.retry_policy.maximum_interval.FromTimedelta(timedelta(seconds=maximum))
        if o.RetryLimit < 0:
            raise InvalidArgument("TransOptions.RetryLimit", "must not be negative")
        options.retry_policy.maximum_attempts = int(o.RetryLimit)
        qp: tm_pb2.Endpoint | None = None
        if prepare:
            if mode != tm_pb2.MODE_MESSAGE:
                raise InvalidArgument("TransType", "Prepare is for msg only")
            if not request.QueryPrepared:
                raise InvalidArgument("QueryPrepared", "is required for Prepare")
            qp = _endpoint(request.QueryPrepared, "QueryPrepared")
        new = self._conv.new_transaction(
            request.Gid,
            steps,
            options,
            query_prepared=qp,
            database="",
            trace_context=_trace_context(context),
        )
        return dataclasses.replace(new, protocol=dtm.PROTOCOL)

    @grpc_errors
    async def NewGid(self, request: empty_pb2.Empty, context: Ctx) -> dtmgimp_pb2.DtmGidReply:
        return dtmgimp_pb2.DtmGidReply(Gid=self._svc.new_gid(self._main._who(context)))

    @grpc_errors
    async def Prepare(self, request: dtmgimp_pb2.DtmRequest, context: Ctx) -> empty_pb2.Empty:
        who = self._main._who(context)
        self._refuse_branch_calls(context)
        await self._svc.prepare(self._new(request, context, prepare=True), who)
        return empty_pb2.Empty()

    @grpc_errors
    async def Submit(self, request: dtmgimp_pb2.DtmRequest, context: Ctx) -> empty_pb2.Empty:
        who = self._main._who(context)
        self._refuse_branch_calls(context)
        gid = self._conv.gid(request.Gid, "Gid")
        new = self._new(request, context, prepare=False) if request.Steps else None
        wait = request.TransOptions.WaitResult
        tx = await self._svc.submit(
            gid,
            new,
            wait=wait,
            wait_timeout=self._conv.wait_timeout(None, context.time_remaining()),
            who=who,
        )
        if wait and tx.status in _FAILED:
            raise BusinessFailure(dtm.RESULT_FAILURE, gid=gid, metadata={"error": tx.error})
        return empty_pb2.Empty()

    @grpc_errors
    async def Abort(self, request: dtmgimp_pb2.DtmRequest, context: Ctx) -> empty_pb2.Empty:
        who = self._main._who(context)
        gid = self._conv.gid(request.Gid, "Gid")
        await self._svc.abort(gid, self._conv.reason(request.RollbackReason), who)
        return empty_pb2.Empty()

    async def _unsupported(self, name: str, context: Ctx) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"dtmgimp.Dtm/{name} is not supported by this TM (it serves msg and saga:"
            " NewGid, Prepare, Submit, Abort)",
        )

    async def RegisterBranch(self, request: Any, context: Ctx) -> Any:
        return await self._unsupported("RegisterBranch", context)

    async def PrepareWorkflow(self, request: Any, context: Ctx) -> Any:
        return await self._unsupported("PrepareWorkflow", context)

    async def Subscribe(self, request: Any, context: Ctx) -> Any:
        return await self._unsupported("Subscribe", context)

    async def Unsubscribe(self, request: Any, context: Ctx) -> Any:
        return await self._unsupported("Unsubscribe", context)

    async def DeleteTopic(self, request: Any, context: Ctx) -> Any:
        return await self._unsupported("DeleteTopic", context)
