"""The console in a real browser: Playwright driving Debian's chromium (no download).

A real TM (auth file: an admin, a reader) with its console, real participants, jobs that
succeed, fail and retry. ``STEPPING_SCREENSHOTS=1`` saves docs/console-jobs.png and
docs/console-job.png.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from tests.console.conftest import md, token
from tests.integration.helpers import fast_retry, gid, step
from tests.integration.participant import FakeAnswer, Participant
from tm_service.server import TmServer

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} missing: run scripts/setup --dev as root (apt-get install chromium)",
)

if Path(CHROMIUM).exists():
    from playwright.async_api import Browser, Page, async_playwright, expect


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        await b.close()


async def _submit(tm: TmServer, steps: list[tm_pb2.Step], *, wait: bool = True) -> str:
    job = gid()
    async with grpc.aio.insecure_channel(tm.target) as channel:
        stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
        await stub.Submit(
            tm_pb2.SubmitRequest(gid=job, steps=steps, tags={"suite": "browser"}, wait_result=wait),
            metadata=md("root"),
        )
    return job


async def _jobs(tm: TmServer, participant: Participant) -> dict[str, str]:
    """One that succeeds, one that retries then succeeds, one that fails, one that keeps
    retrying (still running)."""
    participant.fail_first["/shop.v1.Stock/Retry"] = 2
    participant.fail(
        "/shop.v1.Pay/Charge",
        *[FakeAnswer(grpc.StatusCode.UNAVAILABLE, "card service down: <b>503</b>")] * 2,
    )
    participant.fail(
        "/shop.v1.Mail/Send", *[FakeAnswer(grpc.StatusCode.UNAVAILABLE, "smtp busy")] * 1000
    )
    t = participant.target
    return {
        "ok": await _submit(
            tm, [step(t, "/shop.v1.Stock/Reserve", b'{"sku":"a1"}', name="reserve")]
        ),
        "retried": await _submit(
            tm, [step(t, "/shop.v1.Stock/Retry", name="retry", retry_policy=fast_retry())]
        ),
        "failed": await _submit(
            tm,
            [
                step(t, "/shop.v1.Stock/Reserve", b'{"sku":"b2"}', name="reserve"),
                step(
                    t,
                    "/shop.v1.Pay/Charge",
                    b'{"cents":1200}',
                    name="charge",
                    retry_policy=fast_retry(attempts=2),
                ),
            ],
        ),
        "running": await _submit(
            tm,
            [step(t, "/shop.v1.Mail/Send", name="mail", retry_policy=fast_retry(initial=0.5))],
            wait=False,
        ),
    }


async def _login(page: Page, tm: TmServer, name: str) -> None:
    await page.goto(tm.console.url + "login")
    await page.fill("input[name=token]", token(name))
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Jobs")


def _shot(name: str) -> str | None:
    return str(DOCS / name) if os.environ.get("STEPPING_SCREENSHOTS") == "1" else None


async def test_view_filter_open_and_roles(
    console_tm: TmServer, participant: Participant, browser: Browser
) -> None:
    jobs = await _jobs(console_tm, participant)
    page = await (await browser.new_context()).new_page()
    # Without a login: refused (sent to the login page; a bare request gets a 303).
    response = await page.request.get(console_tm.console.url + "jobs", max_redirects=0)
    assert response.status == 303
    await page.goto(console_tm.console.url + "jobs/" + jobs["failed"])
    await expect(page.locator("h1")).to_have_text("Log in")

    await _login(page, console_tm, "root")
    for job in jobs.values():
        await expect(page.locator(f"a.gid:text-is('{job}')")).to_be_visible()
    await page.click("a.chip.st-FAILED")
    assert "status=FAILED" in page.url
    await expect(page.locator(f"a.gid:text-is('{jobs['failed']}')")).to_be_visible()
    await expect(page.locator("a.gid")).to_have_count(1)
    await page.goto(console_tm.console.url + "jobs")  # all jobs, for the screenshot
    if shot := _shot("console-jobs.png"):
        await page.screenshot(path=shot, full_page=True)

    await page.goto(console_tm.console.url + "jobs?status=FAILED")
    await page.click(f"a.gid:text-is('{jobs['failed']}')")
    await expect(page.locator("#job-status")).to_have_text("FAILED")
    await expect(page.locator("#step-1 .step-error")).to_contain_text(
        "card service down: <b>503</b>"
    )
    await expect(page.locator("#btn-resume")).to_be_visible()

    reader = await (await browser.new_context()).new_page()
    await _login(reader, console_tm, "audit")
    await reader.goto(console_tm.console.url + "jobs/" + jobs["failed"])
    await expect(reader.locator("#job-status")).to_have_text("FAILED")
    await expect(reader.locator("#btn-resume")).to_have_count(0)
    await reader.goto(console_tm.console.url + "jobs/" + jobs["running"])
    await expect(reader.locator("#btn-cancel")).to_have_count(0)


async def test_the_timeline_shows_the_failing_attempts(
    console_tm: TmServer, participant: Participant, browser: Browser
) -> None:
    """Needs StepState.history from the TM (the job-control work)."""
    jobs = await _jobs(console_tm, participant)
    page = await (await browser.new_context()).new_page()
    await _login(page, console_tm, "root")
    await page.goto(console_tm.console.url + "jobs/" + jobs["failed"])
    await expect(page.locator(".tl-row")).to_have_count(2)
    await expect(page.locator(".bar.bad")).to_have_count(2)
    await page.locator(".bar.bad").first.click()
    await expect(page.locator("#tl-detail")).to_contain_text("card service down: <b>503</b>")
    if shot := _shot("console-job.png"):
        await page.screenshot(path=shot, full_page=True)


async def test_resume_a_failed_job_and_cancel_a_running_one(
    console_tm: TmServer, participant: Participant, browser: Browser
) -> None:
    """Needs the TM's Cancel and Resume (the job-control work)."""
    jobs = await _jobs(console_tm, participant)
    page = await (await browser.new_context()).new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await _login(page, console_tm, "root")

    await page.goto(console_tm.console.url + "jobs/" + jobs["failed"])
    await expect(page.locator("#job-status")).to_have_text("FAILED")
    # The participant is fixed: the scripted failures are used up.
    assert not participant.scripts["/shop.v1.Pay/Charge"]
    await page.click("#btn-resume")
    await expect(page.locator(".notice")).to_have_text("resume: done")
    for _ in range(60):
        if await page.locator("#job-status").inner_text() == "SUCCEEDED":
            break
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(page.locator("#job-status")).to_have_text("SUCCEEDED")

    await page.goto(console_tm.console.url + "jobs/" + jobs["running"])
    await page.click("#btn-cancel")
    await expect(page.locator(".notice")).to_have_text("cancel: done")
    for _ in range(60):
        if await page.locator("#job-status").inner_text() in ("FAILED", "ABORTED"):
            break
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(page.locator("#btn-cancel")).to_have_count(0)
