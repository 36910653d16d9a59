"""Finding jobs: the List/Count filter, its SQL, its in-memory twin, and purging.

``TxFilter`` is what ListTransactions, CountTransactions and the CLI filter by (the API
validated it). ``conditions`` is its SQL for the Postgres store, written so that each
condition can use an index of migration 0005; ``matches`` is the same rule in Python
for the in-memory store. The contract suite runs both against the same cases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, literal, or_, select, union

from tm_service.domain import FINAL_STATUSES, Mode, StepSpec, StepState, TxStatus
from tm_service.store._schema import steps, transactions

if TYPE_CHECKING:
    from sqlalchemy.sql.selectable import CompoundSelect

__all__ = [
    "PURGE_BATCH",
    "RETENTION_LOCK_KEY",
    "TxFilter",
    "conditions",
    "final_statuses",
    "like_escape",
    "matches",
]

_TX = transactions.c
_ST = steps.c

# Rows one purge/retention statement deletes: small, so each holds its locks briefly.
PURGE_BATCH = 500
# pg_try_advisory_lock key of the retention pass ("stepping" in ASCII, as a bigint).
RETENTION_LOCK_KEY = 0x7374657070696E67


@dataclass(frozen=True, slots=True)
class TxFilter:
    """Conditions on jobs, all of which must hold (empty / None: no condition)."""

    statuses: tuple[TxStatus, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)  # all must match (containment)
    created_after: datetime | None = None  # create_time >= this
    created_before: datetime | None = None  # create_time < this
    finished_after: datetime | None = None  # finish_time >= this
    finished_before: datetime | None = None  # finish_time < this
    gid_prefix: str = ""
    target: str = ""  # some step's action or compensation target
    method: str = ""  # some step's action or compensation method
    error_contains: str = ""  # the job's error or a step's last_error (case-insensitive)
    mode: Mode | None = None
    needs_attention: bool = False
    owner: str | None = None  # a ``client`` principal's own jobs only

    def with_owner(self, owner: str | None) -> TxFilter:
        if owner is None:
            return self
        return dataclasses.replace(self, owner=owner)


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix_end(prefix: str) -> str:
    """The smallest string above every string starting with ``prefix`` (byte order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def conditions(f: TxFilter) -> list[ColumnElement[bool]]:
    """WHERE clauses on ``stepping_transactions`` for ``f`` (AND them)."""
    out: list[ColumnElement[bool]] = []
    if f.owner is not None:
        out.append(_TX.owner == f.owner)
    if f.statuses:
        out.append(_TX.status.in_([int(s) for s in f.statuses]))
    if f.tags:
        # jsonb containment: served by the GIN (jsonb_path_ops) index on tags.
        out.append(_TX.tags.contains(dict(f.tags)))
    if f.created_after is not None:
        out.append(_TX.create_time >= f.created_after)
    if f.created_before is not None:
        out.append(_TX.create_time < f.created_before)
    if f.finished_after is not None:
        out.append(_TX.finish_time >= f.finished_after)
    if f.finished_before is not None:
        out.append(_TX.finish_time < f.finished_before)
    if f.gid_prefix:
        # The text_pattern_ops operators: a range scan of the gid pattern index, whether
        # the plan is custom or generic (LIKE 'p%' needs the value at plan time).
        out.append(_TX.gid.op("~>=~")(f.gid_prefix))
        out.append(_TX.gid.op("~<~")(_prefix_end(f.gid_prefix)))
    if f.target:
        out.append(
            _TX.gid.in_(
                select(_ST.gid).where(
                    or_(_ST.action_target == f.target, _ST.comp_target == f.target)
                )
            )
        )
    if f.method:
        out.append(
            _TX.gid.in_(
                select(_ST.gid).where(
                    or_(_ST.action_method == f.method, _ST.comp_method == f.method)
                )
            )
        )
    if f.error_contains:
        pattern = f"%{like_escape(f.error_contains)}%"
        job = transactions.alias("e")
        matched: CompoundSelect[Any] = union(
            select(job.c.gid).where(
                job.c.error != literal(""), job.c.error.ilike(pattern, escape="\\")
            ),
            select(_ST.gid).where(
                _ST.last_error != literal(""), _ST.last_error.ilike(pattern, escape="\\")
            ),
        )
        out.append(_TX.gid.in_(matched))
    if f.mode is not None:
        out.append(_TX.mode == int(f.mode))
    if f.needs_attention:
        out.append(_TX.needs_attention != literal(""))
    return out


def matches(
    f: TxFilter,
    *,
    gid: str,
    status: TxStatus,
    mode: Mode,
    tags: Mapping[str, str],
    create_time: datetime,
    finish_time: datetime | None,
    error: str,
    needs_attention: str,
    owner: str | None,
    specs: Sequence[StepSpec],
    states: Sequence[StepState],
) -> bool:
    """``conditions`` in Python, for the in-memory store."""
    if f.owner is not None and owner != f.owner:
        return False
    if f.statuses and status not in f.statuses:
        return False
    if any(tags.get(k) != v for k, v in f.tags.items()):
        return False
    if f.created_after is not None and create_time < f.created_after:
        return False
    if f.created_before is not None and create_time >= f.created_before:
        return False
    if f.finished_after is not None and (finish_time is None or finish_time < f.finished_after):
        return False
    if f.finished_before is not None and (finish_time is None or finish_time >= f.finished_before):
        return False
    if f.gid_prefix and not gid.startswith(f.gid_prefix):
        return False
    if f.target and not any(
        s.action.target == f.target or (s.compensation and s.compensation.target == f.target)
        for s in specs
    ):
        return False
    if f.method and not any(
        s.action.method == f.method or (s.compensation and s.compensation.method == f.method)
        for s in specs
    ):
        return False
    if f.error_contains:
        needle = f.error_contains.lower()  # as ILIKE compares
        texts = [error, *(s.last_error for s in states)]
        if not any(needle in t.lower() for t in texts):
            return False
    if f.mode is not None and mode is not f.mode:
        return False
    return not (f.needs_attention and not needs_attention)


def final_statuses(statuses: Sequence[TxStatus]) -> tuple[TxStatus, ...]:
    """The statuses a purge deletes: the given final ones, or every final one."""
    return tuple(statuses) if statuses else tuple(sorted(FINAL_STATUSES))
