"""Tags and the List/Count/Purge filters: validated proto in, store types out.

Every field is checked and named on error (``tags["order id"]``,
``filter.created_before``), so a bad request is refused whole with INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from stepping.tm.v1 import tm_pb2

from tm_service.api._convert import validate_method, validate_target
from tm_service.api._tags import tags
from tm_service.domain import FINAL_STATUSES, Mode, TxStatus
from tm_service.errors import InvalidArgument
from tm_service.store import TxFilter

__all__ = ["purge_request", "statuses", "transaction_filter"]

MAX_FILTER_TEXT = 256
MAX_PURGE_AGE = 100 * 365 * 86400.0

_GID_CHARS = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def _printable(text: str) -> bool:
    return text.isprintable()


def _time(ts: Timestamp, field: str) -> datetime:
    if not 0 <= ts.nanos < 1_000_000_000 or not 0 <= ts.seconds < 253402300800:
        raise InvalidArgument(field, "is not a valid timestamp (1970-01-01 to 9999-12-31)")
    return datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000)


_TimeField = Literal["created_after", "created_before", "finished_after", "finished_before"]


def _range(
    f: tm_pb2.TransactionFilter, after: _TimeField, before: _TimeField
) -> tuple[datetime | None, datetime | None]:
    lo = _time(getattr(f, after), f"filter.{after}") if f.HasField(after) else None
    hi = _time(getattr(f, before), f"filter.{before}") if f.HasField(before) else None
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidArgument(f"filter.{before}", f"must be after filter.{after}")
    return lo, hi


def _text(value: str, field: str) -> str:
    if len(value) > MAX_FILTER_TEXT:
        raise InvalidArgument(field, f"is longer than {MAX_FILTER_TEXT} characters")
    if not _printable(value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def statuses(values: Sequence[int], field: str = "statuses") -> tuple[TxStatus, ...]:
    out: list[TxStatus] = []
    for i, v in enumerate(values):
        try:
            out.append(TxStatus(v))
        except ValueError:
            raise InvalidArgument(f"{field}[{i}]", f"unknown status {v}") from None
    return tuple(dict.fromkeys(out))


def transaction_filter(
    f: tm_pb2.TransactionFilter,
    *,
    statuses_: Sequence[TxStatus] = (),
    max_gid_length: int = 128,
) -> TxFilter:
    """The request's filter (and List's ``statuses``) as the store's TxFilter."""
    created_after, created_before = _range(f, "created_after", "created_before")
    finished_after, finished_before = _range(f, "finished_after", "finished_before")
    if f.gid_prefix:
        if len(f.gid_prefix) > max_gid_length:
            raise InvalidArgument(
                "filter.gid_prefix", f"is longer than {max_gid_length} characters"
            )
        if not _GID_CHARS.match(f.gid_prefix):
            raise InvalidArgument(
                "filter.gid_prefix", "may only contain letters, digits and _ . : -"
            )
    if f.target:
        _text(f.target, "filter.target")
        validate_target(f.target, "filter.target")
    if f.method:
        validate_method(f.method, "filter.method")
    mode: Mode | None = None
    if f.mode:
        try:
            mode = Mode(f.mode)
        except ValueError:
            raise InvalidArgument("filter.mode", f"unknown mode {f.mode}") from None
    return TxFilter(
        statuses=tuple(statuses_),
        tags=tags(f.tags, "filter.tags"),
        created_after=created_after,
        created_before=created_before,
        finished_after=finished_after,
        finished_before=finished_before,
        gid_prefix=f.gid_prefix,
        target=f.target,
        method=f.method,
        error_contains=_text(f.error_contains, "filter.error_contains"),
        mode=mode,
        needs_attention=f.needs_attention,
    )


def purge_request(
    older_than: Duration | None, values: Sequence[int]
) -> tuple[float, tuple[TxStatus, ...]]:
    """PurgeTransactions' ``older_than`` (required, > 0) and final ``statuses``."""
    if older_than is None:
        raise InvalidArgument("older_than", "is required (a duration > 0)")
    if older_than.seconds < 0 or older_than.nanos < 0:
        raise InvalidArgument("older_than", "must not be negative")
    seconds = older_than.seconds + older_than.nanos / 1e9
    if seconds <= 0:
        raise InvalidArgument("older_than", "must be positive")
    if seconds > MAX_PURGE_AGE:
        raise InvalidArgument("older_than", "must be at most 100 years")
    chosen = statuses(values)
    for i, s in enumerate(chosen):
        if s not in FINAL_STATUSES:
            names = ", ".join(f"TRANSACTION_STATUS_{x.name}" for x in sorted(FINAL_STATUSES))
            raise InvalidArgument(
                f"statuses[{i}]", f"TRANSACTION_STATUS_{s.name} is not final; use {names}"
            )
    return seconds, chosen
