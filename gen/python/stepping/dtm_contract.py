"""DTM's wire names (github.com/dtm-labs/dtm), written down once for the TM and the SDK.

Hand-written, like ``contract.py`` beside it: the DTM dialect of the TM's calls
(``tm_service.processing._dialect``), the DTM API servicer and the DTM barrier layout
(``participant_sdk._dtm_barrier``) take these names from here.
"""

from __future__ import annotations

__all__ = [
    "BARRIER_TABLE",
    "BRANCH_QUERY_PREPARED",
    "DEFAULT_REQUEST_TIMEOUT",
    "KEY_BRANCH_ID",
    "KEY_DTM",
    "KEY_GID",
    "KEY_OP",
    "KEY_TRANS_TYPE",
    "OP_ACTION",
    "OP_COMPENSATE",
    "OP_MSG",
    "PROTOCOL",
    "RESULT_FAILURE",
    "RESULT_ONGOING",
    "TRANS_MSG",
    "TRANS_SAGA",
    "branch_id",
]

#: ``stepping_transactions.protocol`` of a job created through ``dtmgimp.Dtm``.
PROTOCOL = "dtm"

#: ``DtmRequest.TransType`` values this TM serves.
TRANS_MSG = "msg"
TRANS_SAGA = "saga"

#: Metadata of a DTM branch call.
KEY_GID = "dtm-gid"
KEY_TRANS_TYPE = "dtm-trans_type"
KEY_BRANCH_ID = "dtm-branch_id"
KEY_OP = "dtm-op"
KEY_DTM = "dtm-dtm"

#: ``dtm-op`` values.
OP_ACTION = "action"
OP_COMPENSATE = "compensate"
OP_MSG = "msg"  # the back-check (QueryPrepared) of a msg

#: The back-check's branch id.
BRANCH_QUERY_PREPARED = "00"

#: Status messages: ABORTED "FAILURE" is a business failure, FAILED_PRECONDITION
#: "ONGOING" means "not yet, ask again".
RESULT_FAILURE = "FAILURE"
RESULT_ONGOING = "ONGOING"

#: DTM's default branch call deadline (seconds) when ``RequestTimeout`` is 0.
DEFAULT_REQUEST_TIMEOUT = 3.0

#: DTM's barrier table.
BARRIER_TABLE = "dtm_barrier.barrier"


def branch_id(index: int) -> str:
    """DTM's branch id of the step at ``index`` (0-based): "01", "02", ..."""
    return f"{index + 1:02d}"
