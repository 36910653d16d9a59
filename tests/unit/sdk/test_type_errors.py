"""mypy rejects a job step whose payload is not the step function's argument type
(as Temporal's tests/test_client_type_errors.py): runs mypy on a snippet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SNIPPET = """
from dataclasses import dataclass

from participant_sdk import ParticipantServer, TmClient, step


@dataclass
class Transfer:
    account: str
    amount: int


@dataclass
class Order:
    id: str


@step(name="Debit")
async def debit(t: Transfer) -> None: ...


@step(name="Ping")
def ping() -> str:
    return "pong"


def build(tm: TmClient, bank: ParticipantServer) -> None:
    job = tm.job()
    job.add_step(debit, Transfer("alice", 1), target=bank)  # ok
    job.add_step(ping, target=bank)  # ok
    job.add_step(debit, Order("o-1"), target=bank)  # line 31: wrong payload type
    job.add_step(debit, {"account": "alice"}, target=bank)  # line 32: a dict is not a Transfer
"""


def test_mypy_rejects_a_wrong_payload_type(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    env = {**os.environ, "MYPYPATH": str(ROOT / "gen" / "python")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            os.devnull,
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=170,
        check=False,
    )
    # Only the snippet's errors (the SDK's own imports are checked by the project's mypy run).
    errors = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(str(source)) and ": error:" in line
    ]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert lines == [31, 32], result.stdout + result.stderr
    assert all('to "add_step" of "Job" has incompatible type' in e for e in errors), result.stdout
