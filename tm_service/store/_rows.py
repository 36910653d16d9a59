"""Conversions between table rows and domain objects (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tm_service.domain import (
    ActiveJob,
    Attempt,
    Endpoint,
    Mode,
    NewTransaction,
    RetryPolicy,
    StepSpec,
    StepState,
    StepStatus,
    Transaction,
    TxOptions,
    TxStatus,
)

__all__ = [
    "active_job",
    "inserted_job",
    "spec_from_row",
    "state_from_row",
    "transaction_from_rows",
]

Row = Mapping[Any, Any]


def spec_from_row(r: Row) -> StepSpec:
    comp = Endpoint(r["comp_target"], r["comp_method"]) if r["comp_target"] else None
    return StepSpec(
        index=r["idx"],
        name=r["name"],
        action=Endpoint(r["action_target"], r["action_method"]),
        compensation=comp,
        payload=bytes(r["payload"]),
        headers=dict(r["headers"]),
        retry_policy=RetryPolicy(
            r["initial_interval"],
            r["backoff_coefficient"],
            r["maximum_interval"],
            r["maximum_attempts"],
            tuple(r.get("non_retryable_codes") or ()),
        ),
        timeout=r["timeout"],
    )


def state_from_row(r: Row, *, with_result: bool = True) -> StepState:
    result = r.get("result") if with_result else None
    return StepState(
        index=r["idx"],
        name=r["name"],
        status=StepStatus(r["status"]),
        attempts=r["attempts"],
        last_error=r["last_error"],
        result=bytes(result) if result is not None else None,
        next_attempt_time=r["next_attempt_time"],
        history=_calls(r.get("history")) if with_result else (),
    )


def _calls(raw: Any) -> tuple[Attempt, ...]:
    """A stored history (JSON array; asyncpg may hand jsonb over as text)."""
    if not raw:
        return ()
    items = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(Attempt.from_json(d) for d in items)


def options_from_row(r: Row) -> TxOptions:
    return TxOptions(
        mode=Mode(r["mode"]),
        step_timeout=r["step_timeout"],
        check_prepared_after=r["check_prepared_after"],
        deadline=r["deadline"],
        concurrent=r["concurrent"],
    )


def transaction_from_rows(
    tx: Row, step_rows_: Sequence[Row], *, with_results: bool = True
) -> Transaction:
    return Transaction(
        gid=tx["gid"],
        mode=Mode(tx["mode"]),
        status=TxStatus(tx["status"]),
        steps=[state_from_row(s, with_result=with_results) for s in step_rows_],
        error=tx["error"],
        create_time=tx["create_time"],
        update_time=tx["update_time"],
        finish_time=tx["finish_time"],
        owner=tx["owner"],
        tags=dict(tx["tags"] or {}),
        cancel_reason=tx.get("cancel_reason"),
        **(_details(tx, step_rows_) if with_results else {}),
    )


def _details(tx: Row, step_rows_: Sequence[Row]) -> dict[str, Any]:
    """What a read of one whole job adds for GetTransaction (whole step rows needed)."""
    qp = Endpoint(tx["qp_target"], tx["qp_method"]) if tx["qp_target"] else None
    return {
        "specs": tuple(spec_from_row(s) for s in step_rows_),
        "options": options_from_row(tx),
        "deadline_at": tx["deadline_at"],
        "trace_context": dict(tx["trace_context"] or {}),
        "query_prepared": qp,
        "needs_attention": tx.get("needs_attention") or "",
        "query_prepared_history": _calls(tx.get("qp_history")),
    }


def active_job(tx: Row, step_rows_: Sequence[Row], lease_valid_until: float) -> ActiveJob:
    qp = Endpoint(tx["qp_target"], tx["qp_method"]) if tx["qp_target"] else None
    return _job(
        tx,
        options=options_from_row(tx),
        query_prepared=qp,
        specs=tuple(spec_from_row(s) for s in step_rows_),
        states=[state_from_row(s, with_result=False) for s in step_rows_],
        lease_valid_until=lease_valid_until,
    )


def inserted_job(new: NewTransaction, status: TxStatus, create_time: datetime) -> ActiveJob:
    """A new job as the batch statement stored it (computing what ``_writes._JOBS`` does)."""
    submitted = status is TxStatus.SUBMITTED
    deadline = new.options.deadline
    tx = {
        "gid": new.gid,
        "status": status,
        "database": new.database,
        "trace_context": new.trace_context,
        "query_attempts": 0,
        "deadline_at": (
            create_time + timedelta(seconds=deadline)
            if submitted and deadline is not None
            else None
        ),
        "error": "",
        "lease_token": 1 if submitted else 0,
        "create_time": create_time,
        "update_time": create_time,
        "finish_time": None,
        "owner": new.owner,
        "tags": new.tags,
        "protocol": new.protocol,
    }
    states = [StepState(s.index, s.name, StepStatus.PENDING, 0, "", None, None) for s in new.steps]
    return _job(
        tx,
        options=new.options,
        query_prepared=new.query_prepared,
        specs=new.steps,
        states=states,
        lease_valid_until=0.0,
    )


def _job(
    tx: Row,
    *,
    options: TxOptions,
    query_prepared: Endpoint | None,
    specs: tuple[StepSpec, ...],
    states: list[StepState],
    lease_valid_until: float,
) -> ActiveJob:
    """The one place an ActiveJob is made: from the job row's columns and its steps."""
    return ActiveJob(
        gid=tx["gid"],
        status=TxStatus(tx["status"]),
        options=options,
        specs=specs,
        states=states,
        query_prepared=query_prepared,
        database=tx["database"],
        trace_context=dict(tx["trace_context"] or {}),
        query_attempts=tx["query_attempts"],
        deadline_at=tx["deadline_at"],
        error=tx["error"],
        lease_token=tx["lease_token"],
        lease_valid_until=lease_valid_until,
        create_time=tx["create_time"],
        update_time=tx["update_time"],
        finish_time=tx["finish_time"],
        owner=tx["owner"],
        tags=dict(tx["tags"] or {}),
        protocol=tx.get("protocol") or "",
        cancel_in_flight=tx.get("cancelled_token") is not None,
    )
