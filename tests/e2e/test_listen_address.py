"""A second TM on a taken address fails to start, with one line and no traceback."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.e2e.conftest import SpawnTm

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_second_tm_on_a_taken_address_exits_with_one_line(
    spawn_tm: SpawnTm, database_url: str, workers: str
) -> None:
    first = await spawn_tm(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPPING_", "OTEL_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tm_service",
        "serve",
        "--listen",
        first.target,
        "--database-url",
        database_url,
        "--log-level",
        "WARNING",
        "--workers",
        workers,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert lines == [lines[-1]], err.decode()
    taken = f"stepping-tm: cannot listen on {first.target}: the address is already in use"
    assert lines[-1] == taken
    assert "Traceback" not in err.decode() and out == b""
    assert first.proc.poll() is None  # the first one keeps serving
