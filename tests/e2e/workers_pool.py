"""A real `stepping-tm serve --workers 2` pool on a free port, for the e2e tests."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from pathlib import Path


async def start_pool(
    database_url: str, *extra: str
) -> tuple[asyncio.subprocess.Process, Path, int]:
    """Start the pool (its output in a log file) and wait until both workers listen."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="stepping-workers-")) / "tm.log"
    # Nothing of the test runner's own configuration leaks in (nor its OTel exporters).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPPING_", "OTEL_"))}
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
            *extra,
            stdout=out,
            stderr=out,
            env=env,
        )
    for _ in range(600):  # two interpreters starting on a busy 2-core machine
        if log.read_text().count("listening on") == 2 or proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    return proc, log, port
