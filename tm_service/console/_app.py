"""The console's HTTP side (aiohttp): sessions, login, CSRF, the pages, the actions.

The console is a gRPC client of the TM: each call carries the logged-in user's token,
so the TM's own authentication, roles and owner scoping decide what it may see and do.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from urllib.parse import quote, urlsplit

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp
from stepping.tm.v1 import tm_pb2

from tm_service._tx_cli import TxCliError, parse_statuses, parse_time
from tm_service.console import _html
from tm_service.console._client import TmClient
from tm_service.console._overview import DueStats, overview_page

__all__ = ["COOKIE", "ConsoleConfig", "build_app"]

COOKIE = "stepping_console"
PAGE_SIZE = 50
_SESSION_SECONDS = 12 * 3600
_DEV_BANNER = "The TM has no auth file (dev mode): anyone reaching this console may act."
_DEV_RECHECK = 30.0


@dataclass
class ConsoleConfig:
    trace_url: str = ""
    # The metrics' due-backlog query, when the console runs inside ``serve``.
    due_stats: DueStats | None = None


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    admin: bool
    expires: float


@dataclass
class _State:
    client: TmClient
    config: ConsoleConfig
    sessions: dict[str, Session] = field(default_factory=dict)
    dev_mode: bool | None = None
    dev_checked: float = 0.0


_STATE: web.AppKey[_State] = web.AppKey("state", _State)
_SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(client: TmClient, config: ConsoleConfig | None = None) -> web.Application:
    app = web.Application(middlewares=[_timing, _auth])
    app[_STATE] = _State(client, config or ConsoleConfig())
    static = resources.files("tm_service.console") / "static"
    app.router.add_get("/", _root)
    app.router.add_get("/login", _login_form)
    app.router.add_post("/login", _login)
    app.router.add_post("/logout", _logout)
    app.router.add_get("/jobs", _jobs)
    app.router.add_get("/overview", _overview)
    app.router.add_get("/jobs/{gid}", _job)
    app.router.add_get("/jobs/{gid}/steps/{index}/{part:payload|result}", _download)
    app.router.add_post("/jobs/{gid}/{action:cancel|resume}", _act)
    app.router.add_static("/static", str(static))
    return app


async def _root(_request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/jobs")


def _html_response(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@web.middleware
async def _timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    try:
        response = await handler(request)
    except grpc.aio.AioRpcError as err:  # the TM is away or refused: say so, no traceback
        text = f"the TM answered {err.code().name}: {err.details()}"
        response = _html_response(_html.message_page("TM error", text), 502)
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1000:.1f}"
    return response


async def _dev_mode(state: _State) -> bool:
    """The TM answers without a token: it has no auth file."""
    now = time.monotonic()
    if state.dev_mode is None or now - state.dev_checked > _DEV_RECHECK:
        try:
            await state.client.check_login("")
            state.dev_mode = True
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
            state.dev_mode = False
        state.dev_checked = now
    return state.dev_mode


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/static/") or request.path in ("/login", "/"):
        return await handler(request)
    state = request.app[_STATE]
    sid = request.cookies.get(COOKIE, "")
    session = state.sessions.get(sid)
    if session is not None and session.expires < time.time():
        del state.sessions[sid]
        session = None
    if session is None and await _dev_mode(state):
        session = Session("", "", _dev_csrf(state), admin=True, expires=float("inf"))
    if session is None:
        if request.method == "GET" and request.path != "/logout":
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="log in first")
    request[_SESSION] = session
    if request.method == "POST":
        _check_csrf(request, session)
    return await handler(request)


def _dev_csrf(state: _State) -> str:
    dev = state.sessions.get("")
    if dev is None:
        dev = state.sessions[""] = Session("", "", secrets.token_urlsafe(24), True, float("inf"))
    return dev.csrf


def _check_csrf(request: web.Request, session: Session) -> None:
    """Same origin (the Origin header, when sent, names this host) and the session's token."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text="cross-origin request refused")


async def _csrf_field(request: web.Request, session: Session) -> None:
    form = await request.post()
    if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")


def _banner(request: web.Request) -> str:
    state = request.app[_STATE]
    return _DEV_BANNER if state.dev_mode and not request[_SESSION].token else ""


async def _login_form(request: web.Request) -> web.Response:
    return _html_response(_html.login_page())


async def _login(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text="cross-origin request refused")
    token = str((await request.post()).get("token", "")).strip()
    if not token:
        return _html_response(_html.login_page("Enter a token."), 400)
    try:
        await state.client.check_login(token)
    except grpc.aio.AioRpcError as err:
        if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return _html_response(_html.login_page("The TM does not accept this token."), 401)
        raise
    admin = await state.client.is_admin(token)
    now = time.time()
    for old_sid in [k for k, v in state.sessions.items() if v.expires < now]:
        del state.sessions[old_sid]
    sid = secrets.token_urlsafe(32)
    state.sessions[sid] = Session(
        token,
        "admin" if admin else "read-only",
        secrets.token_urlsafe(24),
        admin,
        time.time() + _SESSION_SECONDS,
    )
    response = web.HTTPSeeOther("/jobs")
    response.set_cookie(
        COOKIE, sid, httponly=True, samesite="Strict", max_age=_SESSION_SECONDS, path="/"
    )
    raise response


async def _logout(request: web.Request) -> web.Response:
    request.app[_STATE].sessions.pop(request.cookies.get(COOKIE, ""), None)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _filter(params: dict[str, list[str]]) -> tm_pb2.TransactionFilter:
    def one(name: str) -> str:
        return (params.get(name) or [""])[0].strip()

    flt = tm_pb2.TransactionFilter(
        gid_prefix=one("gid"),
        target=one("target"),
        method=one("method"),
        error_contains=one("error"),
    )
    for tag in params.get("tag", []):
        if tag.strip():
            key, sep, value = tag.partition("=")
            if not sep:
                raise TxCliError(f"tag: {tag!r} is not key=value")
            flt.tags[key.strip()] = value.strip()
    if one("after"):
        flt.created_after.CopyFrom(_ts(parse_time(one("after"), "created after")))
    if one("before"):
        flt.created_before.CopyFrom(_ts(parse_time(one("before"), "created before")))
    return flt


async def _jobs(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    session: Session = request[_SESSION]
    params = {k: request.query.getall(k) for k in request.query}
    try:
        flt = _filter(params)
        statuses = parse_statuses(params.get("status", []))
    except TxCliError as err:
        page = _html.jobs_page(
            [],
            None,
            params,
            "",
            now=datetime.now(UTC),
            user=session.user,
            banner=_banner(request),
            error=str(err),
        )
        return _html_response(page, 400)
    list_req = tm_pb2.ListTransactionsRequest(
        statuses=statuses,  # type: ignore[arg-type]
        page_size=PAGE_SIZE,
        page_token=(params.get("page") or [""])[0],
        filter=flt,
    )
    error = ""
    bad_filter = False
    jobs: list[tm_pb2.Transaction] = []
    next_token = ""
    counts: tm_pb2.CountTransactionsResponse | None = None
    try:
        listed = await state.client.list(session.token, list_req)
        jobs, next_token = list(listed.transactions), listed.next_page_token
    except grpc.aio.AioRpcError as err:
        error = f"ListTransactions: {err.code().name}: {err.details()}"
        if err.code() == grpc.StatusCode.INVALID_ARGUMENT:  # a filter the TM refuses
            bad_filter = True
    note = ""
    try:
        counts = await state.client.count(session.token, flt)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and not error:
            # The jobs are there; only counting every match took too long.
            note = "No counts: counting this search took too long. " + (err.details() or "")
        elif err.code() != grpc.StatusCode.UNIMPLEMENTED:
            error = error or f"CountTransactions: {err.code().name}: {err.details()}"
    page = _html.jobs_page(
        jobs,
        counts,
        params,
        next_token,
        now=datetime.now(UTC),
        user=session.user,
        banner=_banner(request),
        error=error,
        note=note,
    )
    return _html_response(page, 400 if bad_filter else 502 if error else 200)


async def _get(request: web.Request) -> tm_pb2.Transaction:
    session: Session = request[_SESSION]
    try:
        return await request.app[_STATE].client.get(session.token, request.match_info["gid"])
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound(text=f"no job {request.match_info['gid']}") from None
        if err.code() == grpc.StatusCode.PERMISSION_DENIED:
            raise web.HTTPForbidden(text=err.details() or "permission denied") from None
        raise


async def _job(request: web.Request) -> web.Response:
    session: Session = request[_SESSION]
    tx = await _get(request)
    page = _html.job_page(
        tx,
        user=session.user,
        banner=_banner(request),
        csrf=session.csrf,
        can_act=session.admin,
        trace_url=request.app[_STATE].config.trace_url,
        notice=request.query.get("notice", ""),
    )
    return _html_response(page)


async def _download(request: web.Request) -> web.Response:
    tx = await _get(request)
    index = request.match_info["index"]
    step = next((s for s in tx.steps if str(s.index) == index), None)
    if step is None:
        raise web.HTTPNotFound(text=f"no step {index}")
    part = request.match_info["part"]
    data = step.payload if part == "payload" else step.result
    name = f"{tx.gid}-{index}-{part}.bin".replace('"', "")
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _act(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    session: Session = request[_SESSION]
    await _csrf_field(request, session)
    gid = request.match_info["gid"]
    action = request.match_info["action"]
    try:
        if action == "cancel":
            await state.client.cancel(
                session.token, gid, f"cancelled in the console by {session.user or 'dev'}"
            )
        else:
            await state.client.resume(session.token, gid)
        notice = f"{action}: done"
    except grpc.aio.AioRpcError as err:
        notice = f"{action} refused: {err.code().name}: {err.details()}"
    raise web.HTTPSeeOther(f"/jobs/{quote(gid, safe='')}?notice={quote(notice)}")


async def _overview(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    session: Session = request[_SESSION]
    text = await overview_page(
        state.client,
        session.token,
        state.config.due_stats,
        user=session.user,
        banner=_banner(request),
    )
    return _html_response(text)
