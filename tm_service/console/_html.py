"""Server-rendered HTML. Every value from the TM goes through ``e()`` (html.escape)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from google.protobuf.timestamp_pb2 import Timestamp
from stepping.tm.v1 import tm_pb2

from tm_service.console._payload import Shown, redact_headers, show_bytes

__all__ = ["e", "job_page", "jobs_page", "login_page", "message_page"]

STATUS_PREFIX = "TRANSACTION_STATUS_"
FINAL = ("SUCCEEDED", "ABORTED", "FAILED")


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def status_name(value: int) -> str:
    return tm_pb2.TransactionStatus.Name(value).removeprefix(STATUS_PREFIX)  # type: ignore[arg-type]


def step_status_name(value: int) -> str:
    return tm_pb2.StepStatus.Name(value).removeprefix("STEP_STATUS_")  # type: ignore[arg-type]


def mode_name(value: int) -> str:
    return tm_pb2.Mode.Name(value).removeprefix("MODE_")  # type: ignore[arg-type]


def when(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(ts: Timestamp, now: datetime) -> str:
    if not ts.seconds:
        return ""
    s = int((now - ts.ToDatetime(UTC)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{max(s, 0)}s"


def page(title: str, body: str, *, banner: str = "", user: str = "") -> str:
    who = (
        f'<span class="who">{e(user)} <form method="post" action="/logout" class="inline">'
        f'<button type="submit">log out</button></form></span>'
        if user
        else ""
    )
    top = f'<div class="banner">{e(banner)}</div>' if banner else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · Stepping TM</title>"
        '<link rel=stylesheet href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head><body>'
        f'<header><span><a href="/jobs" class="brand">Stepping TM</a> '
        '<a href="/jobs">Jobs</a> <a href="/overview">Overview</a></span> '
        f"{who}</header>{top}"
        f"<main>{body}</main></body></html>"
    )


def login_page(error: str = "") -> str:
    err = f'<p class="error">{e(error)}</p>' if error else ""
    body = (
        f"<h1>Log in</h1>{err}"
        '<form method="post" action="/login" class="login">'
        '<label>Token <input type="password" name="token" autocomplete="off" autofocus></label>'
        '<button type="submit">Log in</button></form>'
        "<p>A bearer token of the TM's auth file (STEPPING_AUTH_FILE).</p>"
    )
    return page("Log in", body)


def message_page(title: str, text: str, *, user: str = "", banner: str = "") -> str:
    return page(title, f"<h1>{e(title)}</h1><p>{e(text)}</p>", user=user, banner=banner)


FILTER_FIELDS = (
    ("gid", "gid prefix"),
    ("tag", "tag k=v"),
    ("target", "target"),
    ("method", "method"),
    ("error", "error text"),
    ("after", "created after (1h, ISO)"),
    ("before", "created before"),
)


def _count(n: int, capped: bool) -> str:
    """A count as shown: a capped one is a lower bound ("10000+")."""
    return f"{n - 1}+" if capped else str(n)


def _link(params: Mapping[str, list[str]], **change: list[str]) -> str:
    merged = {k: v for k, v in params.items() if k != "page"}
    merged.update(change)
    pairs = [(k, v) for k, vs in merged.items() for v in vs if v]
    return "/jobs?" + urlencode(pairs)


def jobs_page(
    jobs: Iterable[tm_pb2.Transaction],
    counts: tm_pb2.CountTransactionsResponse | None,
    params: Mapping[str, list[str]],
    next_token: str,
    *,
    now: datetime,
    user: str,
    banner: str,
    error: str = "",
    note: str = "",
) -> str:
    chosen = set(params.get("status", []))
    by_status = (
        {status_name(c.status): _count(c.count, c.capped) for c in counts.counts} if counts else {}
    )
    total = _count(counts.total, counts.capped) if counts else None
    chips = [
        f'<a class="chip{" on" if not chosen else ""}" href="{e(_link(params, status=[]))}">'
        f"all <b>{e(total if total is not None else '?')}</b></a>"
    ]
    for name in tm_pb2.TransactionStatus.keys():  # noqa: SIM118 - an enum wrapper
        short = name.removeprefix(STATUS_PREFIX)
        if short == "UNSPECIFIED":
            continue
        on = " on" if short in chosen else ""
        chips.append(
            f'<a class="chip st-{e(short)}{on}" href="{e(_link(params, status=[short]))}">'
            f"{e(short)} <b>{e(by_status.get(short, 0) if counts else '?')}</b></a>"
        )
    inputs = "".join(
        f'<label>{e(label)} <input name="{name}" value="{e((params.get(name) or [""])[0])}">'
        "</label>"
        for name, label in FILTER_FIELDS
    )
    hidden = "".join(f'<input type="hidden" name="status" value="{e(s)}">' for s in chosen)
    rows = []
    for tx in jobs:
        done = sum(1 for s in tx.steps if s.status == tm_pb2.STEP_STATUS_SUCCEEDED)
        last = tx.error or next((s.last_error for s in tx.steps if s.last_error), "")
        tags = " ".join(
            f'<span class="tag">{e(k)}={e(v)}</span>' for k, v in sorted(tx.tags.items())
        )
        st = status_name(tx.status)
        rows.append(
            f'<tr><td><a href="/jobs/{e(quote(tx.gid, safe=""))}" class="gid">{e(tx.gid)}</a></td>'
            f'<td><span class="status st-{e(st)}">{e(st)}</span></td>'
            f"<td>{e(mode_name(tx.mode))}</td><td>{tags}</td>"
            f'<td>{done}/{len(tx.steps)}</td><td title="{e(when(tx.create_time))}">'
            f"{e(age(tx.create_time, now))}</td>"
            f'<td class="err" title="{e(last)}">{e(last[:120])}</td></tr>'
        )
    table = (
        '<table class="jobs"><thead><tr><th>gid</th><th>status</th><th>mode</th><th>tags</th>'
        "<th>steps</th><th>age</th><th>last error</th></tr></thead><tbody>"
        + ("".join(rows) or '<tr><td colspan=7 class="none">no jobs</td></tr>')
        + "</tbody></table>"
    )
    more = (
        f'<a class="next" href="{e(_link(params) + "&" + urlencode({"page": next_token}))}">'
        "next page →</a>"
        if next_token
        else ""
    )
    err = f'<p class="error">{e(error)}</p>' if error else ""
    err += f'<p class="notice">{e(note)}</p>' if note else ""
    body = (
        f'<h1>Jobs</h1><nav class="chips">{"".join(chips)}</nav>'
        f'<form method="get" action="/jobs" class="filters">{hidden}{inputs}'
        '<button type="submit">filter</button> <a href="/jobs">clear</a> '
        '<label class="auto"><input type="checkbox" id="autorefresh" checked> '
        "auto-refresh</label></form>"
        f"{err}{table}{more}"
    )
    return page("Jobs", body, user=user, banner=banner)


# -- the job page ----------------------------------------------------------------------
def _bytes_block(label: str, data: bytes, href: str) -> str:
    shown: Shown = show_bytes(data)
    if shown.kind == "empty":
        return f'<div class="bytes"><span class="lbl">{e(label)}</span> <i>empty</i></div>'
    cut = f' <a href="{e(href)}" download>download all {shown.size} bytes</a>' if shown.cut else ""
    return (
        f'<div class="bytes"><span class="lbl">{e(label)}</span> '
        f'<span class="meta">{shown.size} bytes, {e(shown.kind)}{" (cut)" if shown.cut else ""}'
        f"</span>{cut}<pre>{e(shown.text)}</pre></div>"
    )


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _bars(rows: list[tuple[str, list[tm_pb2.Attempt]]]) -> str:
    """One line per step (and the back-checks), one bar per attempt, on a shared time axis."""
    attempts = [a for _, hist in rows for a in hist if a.start_time.seconds]
    if not attempts:
        return '<p class="none">no attempts recorded yet</p>'
    t0 = min(_seconds(a.start_time) for a in attempts)
    t1 = max(_seconds(a.start_time) + a.duration.ToTimedelta().total_seconds() for a in attempts)
    span = max(t1 - t0, 0.001)
    lines = []
    for label, hist in rows:
        bars = []
        for a in hist:
            if not a.start_time.seconds:
                continue
            start = _seconds(a.start_time)
            dur = a.duration.ToTimedelta().total_seconds()
            left = 100 * (start - t0) / span
            width = max(100 * dur / span, 0.6)
            op = tm_pb2.AttemptOp.Name(a.op).removeprefix("ATTEMPT_OP_").lower()
            ok = "ok" if a.code == 0 and not a.error else "bad"
            tip = (
                f"#{a.number} {op} at {when(a.start_time)}, {dur * 1000:.0f} ms, "
                f"code {a.code}" + (f": {a.error}" if a.error else "")
            )
            bars.append(
                f'<span class="bar {ok} op-{e(op)}" data-left="{left:.2f}" data-width="{width:.2f}"'
                f' title="{e(tip)}" tabindex=0 data-detail="{e(tip)}"></span>'
            )
        lines.append(
            f'<div class="tl-row"><span class="tl-label">{e(label)}</span>'
            f'<span class="tl-track">{"".join(bars)}</span></div>'
        )
    return (
        f'<div class="timeline">{"".join(lines)}'
        f'<div class="tl-axis">0 … {span:.3f} s after {e(datetime.fromtimestamp(t0, UTC))}'
        '</div><pre class="tl-detail" id="tl-detail"></pre></div>'
    )


def _attempt_list(hist: Iterable[tm_pb2.Attempt]) -> str:
    items = []
    for a in hist:
        op = tm_pb2.AttemptOp.Name(a.op).removeprefix("ATTEMPT_OP_").lower()
        dur = a.duration.ToTimedelta().total_seconds() * 1000
        err = f'<pre class="err">{e(a.error)}</pre>' if a.error else ""
        items.append(
            f"<li>#{a.number} {e(op)} {e(when(a.start_time))} {dur:.0f} ms code {a.code}{err}</li>"
        )
    return f'<ol class="attempts">{"".join(items)}</ol>' if items else ""


def _timeout(s: tm_pb2.StepState) -> str:
    return f"{s.timeout.ToTimedelta().total_seconds()}s" if s.timeout.ByteSize() else "default"


def _policy(p: tm_pb2.RetryPolicy) -> str:
    if not p.ByteSize():
        return "default"
    return (
        f"initial {p.initial_interval.ToTimedelta().total_seconds()}s, x{p.backoff_coefficient}, "
        f"max {p.maximum_interval.ToTimedelta().total_seconds()}s, "
        f"attempts {p.maximum_attempts or '∞'}"
    )


def job_page(
    tx: tm_pb2.Transaction,
    *,
    user: str,
    banner: str,
    csrf: str,
    can_act: bool,
    trace_url: str,
    notice: str = "",
) -> str:
    gid_q = quote(tx.gid, safe="")
    st = status_name(tx.status)
    rows: list[tuple[str, list[tm_pb2.Attempt]]] = [
        (f"{s.index}. {s.name or s.action.method}", list(s.history)) for s in tx.steps
    ]
    if tx.query_prepared_history:
        rows.append(("back-check", list(tx.query_prepared_history)))
    actions = []
    if can_act and st not in FINAL:
        actions.append(("cancel", "Cancel", f"Cancel job {tx.gid}?"))
    if can_act and st == "FAILED":
        actions.append(("resume", "Resume", f"Resume job {tx.gid} from its failed step?"))
    buttons = "".join(
        f'<form method="post" action="/jobs/{e(gid_q)}/{a}" class="inline action" '
        f'data-confirm="{e(question)}"><input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<button type="submit" id="btn-{a}">{label}</button></form>'
        for a, label, question in actions
    )
    trace = ""
    if tx.trace_id:
        trace = (
            f'<a href="{e(trace_url.replace("{trace_id}", quote(tx.trace_id, safe="")))}">'
            f"{e(tx.trace_id)}</a>"
            if trace_url
            else e(tx.trace_id)
        )
    facts = [
        ("status", f'<span class="status st-{e(st)}" id="job-status">{e(st)}</span>'),
        ("mode", e(mode_name(tx.mode))),
        ("owner", e(tx.owner or "—")),
        ("created", e(when(tx.create_time))),
        ("updated", e(when(tx.update_time))),
        ("finished", e(when(tx.finish_time) or "—")),
        ("deadline", e(when(tx.deadline_time) or "—")),
        (
            "tags",
            " ".join(f'<span class="tag">{e(k)}={e(v)}</span>' for k, v in sorted(tx.tags.items()))
            or "—",
        ),
        ("trace", trace or "—"),
        ("error", f'<pre class="err">{e(tx.error)}</pre>' if tx.error else "—"),
    ]
    if tx.cancel_reason:
        facts.append(("cancel reason", e(tx.cancel_reason)))
    if tx.needs_attention:
        facts.append(("needs attention", e(tx.needs_attention)))
    dl = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    steps = []
    for s in tx.steps:
        base = f"/jobs/{gid_q}/steps/{s.index}"
        headers = "".join(
            f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in redact_headers(s.headers)
        )
        comp = (
            f"{e(s.compensation.target)} {e(s.compensation.method)}"
            if s.compensation.method
            else "—"
        )
        steps.append(
            f'<section class="step" id="step-{s.index}"><h3>{s.index}. {e(s.name)} '
            f'<span class="status st-{e(step_status_name(s.status))}">'
            f"{e(step_status_name(s.status))}</span> <small>{s.attempts} attempt(s)</small></h3>"
            f"<dl><dt>action</dt><dd>{e(s.action.target)} {e(s.action.method)}</dd>"
            f"<dt>compensation</dt><dd>{comp}</dd>"
            f"<dt>retry policy</dt><dd>{e(_policy(s.retry_policy))}</dd>"
            f"<dt>timeout</dt><dd>{e(_timeout(s))}</dd>"
            f"<dt>next attempt</dt><dd>{e(when(s.next_attempt_time) or '—')}</dd></dl>"
            + (f'<pre class="err step-error">{e(s.last_error)}</pre>' if s.last_error else "")
            + (
                f'<table class="headers"><tr><th>header</th><th>value</th></tr>{headers}</table>'
                if headers
                else ""
            )
            + _bytes_block("payload", s.payload, base + "/payload")
            + _bytes_block("result", s.result, base + "/result")
            + _attempt_list(s.history)
            + "</section>"
        )
    notice_html = f'<p class="notice">{e(notice)}</p>' if notice else ""
    body = (
        f'<h1>Job <code id="gid">{e(tx.gid)}</code> '
        f'<button type="button" data-copy="{e(tx.gid)}">copy gid</button> '
        f'<button type="button" data-copy="stepping-tm tx show {e(tx.gid)}">copy tx show</button>'
        f"</h1>{notice_html}<div class=actions>{buttons}</div><dl class=facts>{dl}</dl>"
        f"<h2>Timeline</h2>{_bars(rows)}<h2>Steps</h2>{''.join(steps)}"
    )
    return page(f"Job {tx.gid}", body, user=user, banner=banner)
