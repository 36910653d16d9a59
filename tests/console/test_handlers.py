"""The console's HTTP handlers against a real TM (with an auth file) and real participants."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
import pytest_asyncio
from stepping.tm.v1 import tm_pb2

from tests.console.conftest import md, token
from tests.integration.helpers import fast_retry, gid, step
from tests.integration.participant import FakeAnswer, Participant
from tm_service.console import COOKIE
from tm_service.server import TmServer

EVIL = "<script>alert(1)</script>"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield session


async def login(http: aiohttp.ClientSession, tm: TmServer, name: str) -> None:
    async with http.post(
        tm.console.url + "login", data={"token": token(name)}, allow_redirects=False
    ) as r:
        assert r.status == 303, await r.text()
        cookie = r.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"


async def submit(tm: TmServer, participant: Participant, *, fails: bool) -> str:
    job = gid()
    method = "/a.v1.A/Bad" if fails else "/a.v1.A/Do"
    if fails:
        participant.fail(method, *[FakeAnswer(grpc.StatusCode.UNAVAILABLE, "down " + EVIL)] * 2)
    async with grpc.aio.insecure_channel(tm.target) as channel:
        from stepping.tm.v1 import tm_pb2_grpc

        stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
        await stub.Submit(
            tm_pb2.SubmitRequest(
                gid=job,
                steps=[
                    step(
                        participant.target,
                        method,
                        b'{"n":1}',
                        name="charge",
                        retry_policy=fast_retry(attempts=2),
                    )
                ],
                tags={"shop": EVIL},
                wait_result=True,
            ),
            metadata=md("root"),
        )
    return job


async def test_without_a_login_pages_redirect_and_posts_are_refused(
    console_tm: TmServer, http: aiohttp.ClientSession
) -> None:
    url = console_tm.console.url
    async with http.get(url + "jobs", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/login"
    async with http.post(url + "jobs/x/cancel", data={"csrf": "x"}, allow_redirects=False) as r:
        assert r.status == 401
    async with http.post(url + "login", data={"token": "wrong"}, allow_redirects=False) as r:
        assert r.status == 401
        assert "does not accept" in await r.text()
    async with http.get(url + "jobs", allow_redirects=False) as r:
        assert r.status == 303  # a refused login gives no session


async def test_jobs_and_job_pages_escape_and_show_steps(
    console_tm: TmServer, http: aiohttp.ClientSession, participant: Participant
) -> None:
    ok = await submit(console_tm, participant, fails=False)
    bad = await submit(console_tm, participant, fails=True)
    await login(http, console_tm, "root")
    url = console_tm.console.url
    async with http.get(url + "jobs") as r:
        assert r.status == 200
        assert "Server-Timing" in r.headers
        text = await r.text()
    assert ok in text and bad in text
    assert EVIL not in text and "&lt;script&gt;" in text
    async with http.get(url + "jobs/" + bad) as r:
        assert r.status == 200
        page = await r.text()
    assert EVIL not in page
    assert "down &lt;script&gt;alert(1)&lt;/script&gt;" in page  # the step's error, escaped
    assert 'id="job-status">FAILED' in page
    assert 'id="btn-resume"' in page  # admin, FAILED job
    assert "stepping-tm tx show " + bad in page
    async with http.get(url + "jobs/no-such-job") as r:
        assert r.status == 404


async def test_a_reader_sees_no_buttons_and_is_refused_by_the_tm(
    console_tm: TmServer, http: aiohttp.ClientSession, participant: Participant
) -> None:
    bad = await submit(console_tm, participant, fails=True)
    await login(http, console_tm, "audit")
    url = console_tm.console.url
    async with http.get(url + "jobs/" + bad) as r:
        page = await r.text()
    assert bad in page and "btn-resume" not in page and "btn-cancel" not in page
    csrf = await _csrf_of_admin_page(http, console_tm, bad)
    assert csrf is None  # no action form at all for a reader


async def _csrf_of_admin_page(http: aiohttp.ClientSession, tm: TmServer, job: str) -> str | None:
    async with http.get(tm.console.url + "jobs/" + job) as r:
        m = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    return m.group(1) if m else None


async def test_actions_need_the_csrf_token_and_the_same_origin(
    console_tm: TmServer, http: aiohttp.ClientSession, participant: Participant
) -> None:
    bad = await submit(console_tm, participant, fails=True)
    await login(http, console_tm, "root")
    csrf = await _csrf_of_admin_page(http, console_tm, bad)
    assert csrf
    action = console_tm.console.url + f"jobs/{bad}/resume"
    async with http.post(action, data={"csrf": "forged"}, allow_redirects=False) as r:
        assert r.status == 403
    async with http.post(
        action,
        data={"csrf": csrf},
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
    ) as r:
        assert r.status == 403
    async with http.post(action, data={"csrf": csrf}, allow_redirects=False) as r:
        assert r.status == 303  # reached the TM; its answer is shown as the notice
        assert "notice=resume" in r.headers["Location"]


@pytest.mark.parametrize(
    "query", ["status=NOPE", "after=yesterday", "tag=novalue", "tag=" + "k" * 300 + "=v"]
)
async def test_bad_filters_are_a_400_naming_them(
    console_tm: TmServer, http: aiohttp.ClientSession, query: str
) -> None:
    await login(http, console_tm, "root")
    async with http.get(console_tm.console.url + "jobs?" + query) as r:
        assert r.status == 400
        assert 'class="error"' in await r.text()


async def test_static_assets_ship_in_the_package(
    console_tm: TmServer, http: aiohttp.ClientSession
) -> None:
    for name in ("console.js", "console.css"):
        async with http.get(console_tm.console.url + "static/" + name) as r:
            assert r.status == 200 and len(await r.read()) > 100


async def test_without_an_auth_file_it_works_without_login_and_says_so(
    database_url: str, http: aiohttp.ClientSession, participant: Participant
) -> None:
    from tests.conftest import test_settings

    tm = TmServer(test_settings(database_url, console_listen="127.0.0.1:0"))
    await tm.start()
    try:
        async with http.get(tm.console.url + "jobs", allow_redirects=False) as r:
            assert r.status == 200
            assert "no auth file (dev mode)" in await r.text()
    finally:
        await tm.stop(grace=1.0)


async def test_an_unreachable_tm_is_a_502_page(http: aiohttp.ClientSession) -> None:
    from tm_service.console import ConsoleServer

    console = ConsoleServer("127.0.0.1:1")
    await console.start()
    try:
        async with http.get(console.url + "jobs", allow_redirects=False) as r:
            assert r.status == 502
            assert "UNAVAILABLE" in await r.text()
    finally:
        await console.stop()


async def test_the_overview_counts_started_and_finished_jobs_and_the_backlog(
    console_tm: TmServer, http: aiohttp.ClientSession, participant: Participant
) -> None:
    for _ in range(3):
        await submit(console_tm, participant, fails=False)
    await login(http, console_tm, "audit")
    async with http.get(console_tm.console.url + "overview") as r:
        assert r.status == 200
        text = await r.text()
    started = sum(int(n) for n in re.findall(r'class="n started-n">(\d+)<', text))
    finished = sum(int(n) for n in re.findall(r'class="n finished-n">(\d+)<', text))
    assert started == 3 and finished == 3
    assert re.search(r'<span id="due">0</span> due jobs', text)
    assert "SUCCEEDED <b>3</b>" in text


async def test_the_start_line_prints_the_console_url(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import test_settings

    caplog.set_level(logging.INFO, logger="tm_service.server")
    tm = TmServer(test_settings(database_url, console_listen="127.0.0.1:0"))
    await tm.start()
    try:
        line = next(r.getMessage() for r in caplog.records if "TM listening" in r.getMessage())
        assert line.endswith(f"; console at http://127.0.0.1:{tm.console.port}/")
    finally:
        await tm.stop(grace=1.0)
