"""The DTM dialect of a job's calls (jobs created through ``dtmgimp.Dtm``, issue 17).

The one place that knows how DTM talks to branches: DTM's metadata instead of the
stepping contract's, an empty back-check payload, and DTM's answer classification.
``_steps`` and ``_processor`` call these hooks only for a job whose ``protocol`` is
``dtm``; every other job keeps the stepping contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from stepping import dtm_contract as dtm
from stepping.contract import CallInfo
from stepping.participant.v1 import participant_pb2

from tm_service.domain import ActiveJob, Mode, StepSpec
from tm_service.processing._transport import CallResult

__all__ = [
    "DtmCallInfo",
    "back_check_call",
    "back_check_outcome",
    "business_failure",
    "is_dtm",
    "ongoing",
    "step_call",
]


def is_dtm(job: ActiveJob) -> bool:
    return job.protocol == dtm.PROTOCOL


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmCallInfo(CallInfo):
    """A call in DTM's terms: its metadata is DTM's (no stepping keys, not signed)."""

    trans_type: str = dtm.TRANS_MSG
    branch_id: str = ""
    dtm_op: str = ""
    tm_address: str = ""

    def metadata(
        self, *, signing_key: bytes | None = None, payload: bytes = b""
    ) -> list[tuple[str, str]]:
        md = [
            (dtm.KEY_GID, self.gid),
            (dtm.KEY_TRANS_TYPE, self.trans_type),
            (dtm.KEY_BRANCH_ID, self.branch_id),
            (dtm.KEY_OP, self.dtm_op),
            (dtm.KEY_DTM, self.tm_address),
        ]
        md.extend((k, v) for k, v in self.trace_context.items() if k in ("traceparent",))
        md.extend(self.headers.items())
        return md


def _trans_type(job: ActiveJob) -> str:
    return dtm.TRANS_SAGA if job.options.mode is Mode.SAGA else dtm.TRANS_MSG


def step_call(
    job: ActiveJob, spec: StepSpec, op: str, attempt: int, tm_address: str
) -> DtmCallInfo:
    """A branch call: ``op`` is the stepping op (action / compensate), the same in DTM."""
    return DtmCallInfo(
        gid=job.gid,
        op=op,
        step_index=spec.index,
        step_name=spec.name,
        attempt=attempt,
        trace_context=job.trace_context,
        headers=spec.headers,
        trans_type=_trans_type(job),
        branch_id=dtm.branch_id(spec.index),
        dtm_op=dtm.OP_ACTION if op == dtm.OP_ACTION else dtm.OP_COMPENSATE,
        tm_address=tm_address,
    )


def back_check_call(job: ActiveJob, tm_address: str) -> tuple[bytes, DtmCallInfo]:
    """The QueryPrepared call of a msg: an empty payload, branch "00", op "msg"."""
    info = DtmCallInfo(
        gid=job.gid,
        op="query_prepared",
        trace_context=job.trace_context,
        headers=job.specs[0].headers if job.specs else {},
        trans_type=dtm.TRANS_MSG,
        branch_id=dtm.BRANCH_QUERY_PREPARED,
        dtm_op=dtm.OP_MSG,
        tm_address=tm_address,
    )
    return b"", info


def _is_failure(result: CallResult) -> bool:
    # DTM reads any ABORTED but "ONGOING" (older clients' way to say it) as FAILURE.
    return result.code is grpc.StatusCode.ABORTED and result.details != dtm.RESULT_ONGOING


def ongoing(result: CallResult) -> bool:
    """Ask again at the fixed RetryInterval (no backoff)."""
    return result.code is grpc.StatusCode.FAILED_PRECONDITION or (
        result.code is grpc.StatusCode.ABORTED and result.details == dtm.RESULT_ONGOING
    )


def business_failure(job: ActiveJob, result: CallResult) -> bool:
    """Whether an action's answer fails the job: only a saga action's FAILURE does.

    A msg step's FAILURE is retried like any unknown answer (DTM does the same).
    """
    return job.options.mode is Mode.SAGA and _is_failure(result)


def back_check_outcome(result: CallResult) -> int:
    """A back-check answer as a ``PreparedOutcome``: OK committed, FAILURE rolled back."""
    if result.code is grpc.StatusCode.OK:
        return participant_pb2.PREPARED_OUTCOME_COMMITTED
    if _is_failure(result):
        return participant_pb2.PREPARED_OUTCOME_ROLLED_BACK
    return participant_pb2.PREPARED_OUTCOME_UNSPECIFIED
