"""The limits' small parts without I/O: cut texts, control characters, the rate-limited
log of malformed requests, and how the processor treats an over-limit response."""

from __future__ import annotations

import logging

import grpc
import pytest

from tests.fakes import fail, ok
from tests.unit.processing.harness import Core, method, new_job, policy, undo
from tm_service._limits import CUT_MARKER, control_char, cut_text
from tm_service.api._malformed import RateLimitedLog
from tm_service.domain import Mode, StepStatus, TxStatus
from tm_service.processing import CallResult

RE = grpc.StatusCode.RESOURCE_EXHAUSTED


def _too_large() -> CallResult:
    """What GrpcTransport reports when its channel refuses a response."""
    return CallResult(RE, details="the response is larger than the TM's limit", permanent=True)


def test_a_short_text_is_kept_and_a_long_one_cut_with_a_visible_marker() -> None:
    assert cut_text("short", 4096) == "short"
    cut = cut_text("é" * 10_000, 4096)
    assert cut.endswith(CUT_MARKER)
    assert len(cut.encode()) <= 4096
    assert cut.removesuffix(CUT_MARKER) == "é" * len(cut.removesuffix(CUT_MARKER))  # no half é


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\n"])
def test_control_characters_are_found(char: str) -> None:
    assert control_char(f"ab{char}c") == 2


def test_tab_and_line_feed_pass_only_where_lines_are_allowed() -> None:
    assert control_char("a\tb\nc", lines=True) is None
    assert control_char("a\rb", lines=True) == 1
    assert control_char("naïve, ünïcode ok") is None


def test_malformed_requests_are_logged_once_per_window_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RateLimitedLog(60.0, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tm_service.api._malformed"):
        logged = [log.event(f"request {i}") for i in range(100)]
        now[0] = 61.0
        logged.append(log.event("request 100"))
    assert logged.count(True) == 2 and logged[0] and logged[-1]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("1 malformed request(s)")
    assert lines[1].startswith("100 malformed request(s) in the last 60s; latest: request 100")
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


async def test_a_response_over_the_limit_fails_the_step_for_good() -> None:
    core = Core()
    core.transport.answer(method(1), _too_large())
    tx = await core.run(new_job(3, retry=policy(initial=0.1)))
    assert tx.status is TxStatus.FAILED
    assert tx.steps[1].status is StepStatus.FAILED and tx.steps[1].attempts == 1
    assert "larger than the TM's limit" in tx.error
    assert core.clock.waited == []  # not retried


async def test_a_compensation_whose_response_is_over_the_limit_is_not_retried_forever() -> None:
    core = Core()
    core.transport.answer(method(1), fail(grpc.StatusCode.ABORTED, "no"))
    core.transport.answer(undo(0), _too_large(), op="compensate")
    tx = await core.run(new_job(2, mode=Mode.SAGA))
    assert tx.status is TxStatus.FAILED
    assert tx.steps[0].status is StepStatus.FAILED
    assert "larger than the TM's limit" in tx.steps[0].last_error
    assert [m for m, op in core.methods_called() if op == "compensate"].count(undo(0)) == 1


async def test_a_participant_error_text_is_stored_cut() -> None:
    core = Core(settings_overrides={"max_error_text_bytes": 200})
    core.transport.answer(method(0), fail(grpc.StatusCode.ABORTED, "x" * 100_000))
    tx = await core.run(new_job(1))
    assert tx.steps[0].last_error.endswith(CUT_MARKER)
    assert len(tx.steps[0].last_error.encode()) <= 200
    assert len(tx.error) < 400


async def test_a_retry_hint_below_the_minimum_interval_waits_the_minimum() -> None:
    core = Core(settings_overrides={"min_retry_interval_seconds": 0.1})
    core.transport.answer(
        method(0), fail(grpc.StatusCode.UNAVAILABLE, "busy", retry_after=0.0), ok()
    )
    tx = await core.run(new_job(1))
    assert tx.status is TxStatus.SUCCEEDED
    assert core.clock.waited == [0.1]


def test_a_step_spec_repr_leaves_its_headers_out() -> None:
    spec = new_job(1, headers={"authorization": "Bearer s3cret"}).steps[0]
    assert spec.headers == {"authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(spec) and "s3cret" not in repr(new_job(1, headers=spec.headers))
