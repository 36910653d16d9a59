"""A `serve --workers` pool whose parent is SIGKILLed leaves no worker behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


async def test_workers_exit_when_the_parent_is_killed(database_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="stepping-orphans-")) / "tm.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPPING_")}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tm_service",
            "serve",
            "--workers",
            "2",
            "--listen",
            f"127.0.0.1:{port}",
            "--database-url",
            database_url,
            stdout=out,
            stderr=out,
            env=env,
        )
    children: list[psutil.Process] = []
    try:
        for _ in range(600):  # two interpreters starting on a busy 2-core machine
            if log.read_text().count("listening on") == 2:
                break
            await asyncio.sleep(0.05)
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
