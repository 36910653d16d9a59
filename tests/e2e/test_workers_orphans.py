"""A `serve --workers` pool whose parent is SIGKILLed leaves no worker behind."""

from __future__ import annotations

import asyncio
import signal
import sys

import psutil
import pytest

from tests.e2e.workers_pool import start_pool

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


async def test_workers_exit_when_the_parent_is_killed(database_url: str) -> None:
    proc, log, _ = await start_pool(database_url)
    children: list[psutil.Process] = []
    try:
        assert log.read_text().count("listening on") == 2, log.read_text()
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        _, alive = await asyncio.to_thread(psutil.wait_procs, children, 20)
        assert alive == [], f"workers outlived their parent: {alive}"
    finally:
        for child in children:
            if child.is_running():
                child.kill()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
