"""The overview page: jobs started/finished per minute, unfinished jobs, the due backlog.

Started/finished come from CountTransactions (one call per minute and kind, at once);
the due backlog is the metrics' own query (``JobStore.due_stats``, the numbers behind
``stepping.jobs.due`` / ``stepping.jobs.oldest_due_age``) when the console runs inside
``serve``; a standalone console has no database and says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from stepping.tm.v1 import tm_pb2

from tm_service.console._client import TmClient
from tm_service.console._html import e, page, status_name

__all__ = ["MINUTES", "DueStats", "overview_page"]

MINUTES = 10
DueStats = Callable[[], Awaitable[tuple[int, float]]]


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


async def overview_page(
    client: TmClient, token: str, due_stats: DueStats | None, *, user: str, banner: str
) -> str:
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    windows = [(now - timedelta(minutes=i + 1), now - timedelta(minutes=i)) for i in range(MINUTES)]
    started = [
        client.count(
            token, tm_pb2.TransactionFilter(created_after=_ts(a), created_before=_ts(b)), at_most=0
        )
        for a, b in windows
    ]
    finished = [
        client.count(
            token,
            tm_pb2.TransactionFilter(finished_after=_ts(a), finished_before=_ts(b)),
            at_most=0,
        )
        for a, b in windows
    ]
    results = await asyncio.gather(
        *started, *finished, client.count(token, tm_pb2.TransactionFilter())
    )
    s_counts = [r.total for r in results[:MINUTES]]
    f_counts = [r.total for r in results[MINUTES : 2 * MINUTES]]
    everything = results[-1]
    top = max([*s_counts, *f_counts, 1])
    rows = "".join(
        f"<tr><td>{e(a.strftime('%H:%M'))}</td>"
        f'<td><span class="mbar started" data-width="{100 * s / top:.1f}"></span> '
        f'<span class="n started-n">{s}</span></td>'
        f'<td><span class="mbar finished" data-width="{100 * f / top:.1f}"></span> '
        f'<span class="n finished-n">{f}</span></td></tr>'
        for (a, _), s, f in zip(windows, s_counts, f_counts, strict=True)
    )
    if due_stats is not None:
        due, oldest = await due_stats()
        backlog = (
            f'<span id="due">{due}</span> due jobs no replica holds; oldest due {oldest:.1f} s'
        )
    else:
        backlog = "not known to a standalone console (it has no database): see the metrics"
    per_status = " ".join(
        f'<span class="chip st-{e(status_name(c.status))}">{e(status_name(c.status))} '
        f"<b>{c.count}</b></span>"
        for c in everything.counts
    )
    body = (
        "<h1>Overview</h1>"
        f"<p>Due backlog: {backlog}</p>"
        f'<p class="chips">all jobs <b>{everything.total}</b> {per_status}</p>'
        f"<h2>Jobs per minute (last {MINUTES}, UTC)</h2>"
        '<table class="overview"><tr><th>minute</th><th>started</th><th>finished</th></tr>'
        f"{rows}</table>"
    )
    return page("Overview", body, user=user, banner=banner)
