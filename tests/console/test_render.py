"""The console's rendering without a TM: escaping, redaction, payloads, the timeline."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from stepping.tm.v1 import tm_pb2

from tm_service.console._html import job_page, jobs_page
from tm_service.console._payload import SHOW_BYTES, redact_headers, show_bytes

EVIL = '<script>alert("x")</script>'


def test_bytes_are_json_text_or_hex_and_big_ones_cut() -> None:
    assert show_bytes(b"").kind == "empty"
    shown = show_bytes(b'{"a":1}')
    assert (shown.kind, shown.text, shown.size) == ("json", '{\n  "a": 1\n}', 7)
    assert show_bytes("héllo".encode()).kind == "text"
    assert show_bytes(b"\xff\x00\x01") == show_bytes(b"\xff\x00\x01")
    assert show_bytes(b"\xff\x00\x01").text == "ff 00 01"
    assert show_bytes(b"a\x00b").kind == "hex"
    big = show_bytes(b"x" * (SHOW_BYTES + 10))
    assert big.cut and big.size == SHOW_BYTES + 10 and len(big.text) == SHOW_BYTES


def test_credential_like_headers_are_redacted() -> None:
    headers = {
        "Authorization": "Bearer s3cret",
        "x-api-key": "k",
        "cookie": "c",
        "x-auth-token": "t",
        "db-password": "p",
        "client-secret": "s",
        "x-request-id": "r-1",
    }
    shown = dict(redact_headers(headers))
    assert shown.pop("x-request-id") == "r-1"
    assert set(shown.values()) == {"[redacted]"}


def _ts(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _job() -> tm_pb2.Transaction:
    attempts = [
        tm_pb2.Attempt(
            number=1,
            op=tm_pb2.ATTEMPT_OP_ACTION,
            start_time=_ts(1_800_000_000),
            duration=Duration(nanos=50_000_000),
            code=14,
            error="connection refused " + EVIL,
        ),
        tm_pb2.Attempt(
            number=1,
            op=tm_pb2.ATTEMPT_OP_COMPENSATION,
            start_time=_ts(1_800_000_001),
            duration=Duration(nanos=20_000_000),
        ),
    ]
    return tm_pb2.Transaction(
        gid="g-" + EVIL,
        mode=tm_pb2.MODE_SAGA,
        status=tm_pb2.TRANSACTION_STATUS_FAILED,
        owner="orders",
        tags={"order": EVIL},
        trace_id="abc123",
        steps=[
            tm_pb2.StepState(
                index=0,
                name="reserve",
                status=tm_pb2.STEP_STATUS_FAILED,
                attempts=1,
                last_error="connection refused " + EVIL,
                payload=EVIL.encode(),
                result=b"\xff\xfe",
                headers={"authorization": "Bearer top-secret", "x-trace": "t1"},
                history=attempts,
            )
        ],
        query_prepared_history=[
            tm_pb2.Attempt(
                number=1, op=tm_pb2.ATTEMPT_OP_QUERY_PREPARED, start_time=_ts(1_800_000_000.5)
            )
        ],
    )


def test_the_job_page_escapes_everything_and_redacts() -> None:
    text = job_page(
        _job(),
        user="root",
        banner="",
        csrf="tok",
        can_act=True,
        trace_url="http://jaeger:16686/trace/{trace_id}",
    )
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "top-secret" not in text and "[redacted]" in text
    assert "x-trace" in text
    assert "ff fe" in text  # the result is not UTF-8: hex
    assert 'href="http://jaeger:16686/trace/abc123"' in text
    # one bar per attempt: the action, the compensation, the back-check
    assert text.count('class="bar ') == 3
    assert "op-compensation" in text and "op-query_prepared" in text
    # FAILED: Resume and Cancel (a FAILED job is final: no Cancel)
    assert 'id="btn-resume"' in text and 'id="btn-cancel"' not in text
    assert 'name="csrf" value="tok"' in text


def test_no_buttons_without_the_right() -> None:
    text = job_page(_job(), user="audit", banner="", csrf="t", can_act=False, trace_url="")
    assert "btn-resume" not in text and "btn-cancel" not in text
    assert "abc123" in text  # the trace id, without a link


def test_the_jobs_page_says_when_counting_took_too_long() -> None:
    page = jobs_page(
        [],
        None,
        {"error": ["connection refused"]},
        "",
        now=datetime.now(UTC),
        user="ops",
        banner="",
        note="No counts: counting this search took too long. <narrow it>",
    )
    assert (
        '<p class="notice">No counts: counting this search took too long. &lt;narrow it&gt;' in page
    )
    assert 'class="error"' not in page
    assert "all <b>?</b>" in page
