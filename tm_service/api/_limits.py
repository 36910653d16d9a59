"""Request limits (README "Limits"): control characters, headers, a job's total payload.

Kept apart from the field-by-field conversion in ``_convert`` so each limit reads as
one function; every refusal names the field, and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from stepping.tm.v1 import tm_pb2

from tm_service._limits import control_char, cut_text
from tm_service.config import Settings
from tm_service.errors import InvalidArgument

__all__ = ["abort_reason", "check_job_limits", "check_job_text", "check_text"]


def check_text(value: str, field: str, *, lines: bool = False) -> None:
    """Refuse NUL and other control characters (Postgres cannot store NUL; logs and
    terminals should not be driven by a client's text)."""
    at = control_char(value, lines=lines)
    if at is not None:
        raise InvalidArgument(
            field, f"contains the control character U+{ord(value[at]):04X} at position {at}"
        )


def _check_endpoint(e: tm_pb2.Endpoint, field: str) -> None:
    check_text(e.target, f"{field}.target")
    check_text(e.method, f"{field}.method")


def check_job_text(
    steps: Sequence[tm_pb2.Step], query_prepared: tm_pb2.Endpoint | None, database: str
) -> None:
    """Every text field of a Prepare/Submit, before any other check reads it."""
    for i, s in enumerate(steps):
        f = f"steps[{i}]"
        check_text(s.name, f"{f}.name")
        _check_endpoint(s.action, f"{f}.action")
        _check_endpoint(s.compensation, f"{f}.compensation")
        for key, value in s.headers.items():
            check_text(key, f"{f}.headers")
            check_text(value, f"{f}.headers[{key!r}]")
    if query_prepared is not None:
        _check_endpoint(query_prepared, "query_prepared")
    check_text(database, "database")


def check_job_limits(steps: Sequence[tm_pb2.Step], settings: Settings) -> None:
    """A job's total payload and each step's headers (count and bytes)."""
    total = 0
    for i, s in enumerate(steps):
        total += len(s.payload)
        headers = s.headers
        if len(headers) > settings.max_step_headers:
            raise InvalidArgument(
                f"steps[{i}].headers",
                f"has {len(headers)} entries; the limit is {settings.max_step_headers}",
            )
        size = sum(len(k.encode()) + len(v.encode()) for k, v in headers.items())
        limit = settings.max_step_header_bytes
        if size > limit:
            raise InvalidArgument(
                f"steps[{i}].headers", f"keys and values total {size} bytes; the limit is {limit}"
            )
    if total > settings.max_job_payload_bytes:
        raise InvalidArgument(
            "steps",
            f"payloads total {total} bytes; the limit is {settings.max_job_payload_bytes}",
        )


def abort_reason(reason: str, settings: Settings) -> str:
    """An Abort reason as stored: no control characters but tab and LF, cut to the limit."""
    check_text(reason, "reason", lines=True)
    return cut_text(reason, settings.max_error_text_bytes)
