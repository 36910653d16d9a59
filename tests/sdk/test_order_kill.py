"""The order service is SIGKILLed in the middle of ``job.start(conn)``; the TM's
back-check, answered from the barrier row, settles the job as the commit went."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orders as orders_example
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk import ParticipantServer, TmClient
from participant_sdk.client import JobState, JobStatus
from tests.sdk.conftest import Banks, MakeEngine
from tm_service import TmServer

SCRIPT = Path(__file__).with_name("_order_proc.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def orders_db(make_engine: MakeEngine) -> AsyncEngine:
    engine = await make_engine()
    await orders_example.create_schema(engine)
    return engine


@pytest_asyncio.fixture
async def order_server(orders_db: AsyncEngine) -> AsyncIterator[ParticipantServer]:
    """The order service's long-running part, which answers the back-check."""
    async with ParticipantServer(databases=orders_db, host="127.0.0.1") as server:
        yield server


async def _place_and_kill(
    freeze: str, tm: TmServer, banks: Banks, orders_db: AsyncEngine, qp_target: str
) -> str:
    """Runs the order service until it freezes at ``freeze``, SIGKILLs it, returns the gid."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--freeze", freeze,
        "--tm", tm.target,
        "--db", orders_db.url.render_as_string(hide_password=False),
        "--orders", qp_target,
        "--bank-a", banks.a.target,
        "--bank-b", banks.b.target,
        "--amount", "30",
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    gid = ""
    try:
        async with asyncio.timeout(30):
            while not (line := (await proc.stdout.readline()).decode()).startswith("FROZEN"):
                assert line, "the order service exited before freezing"
                if line.startswith("PREPARED "):
                    gid = line.split()[1]
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert gid
    return gid


async def _wait_final(tm: TmClient, gid: str, timeout: float = 20) -> JobState:
    deadline = time.monotonic() + timeout
    while not (state := await tm.get(gid)).status.is_final:
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    return state


async def _orders(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(orders_example.orders)
        return (await conn.execute(count)).scalar_one()


@pytest.mark.e2e
async def test_killed_before_commit_aborts(
    tm: TmServer,
    tm_client: TmClient,
    banks: Banks,
    orders_db: AsyncEngine,
    order_server: ParticipantServer,
) -> None:
    gid = await _place_and_kill("before-commit", tm, banks, orders_db, order_server.target)
    assert (await tm_client.get(gid)).status is JobStatus.PREPARED
    state = await _wait_final(tm_client, gid)
    assert state.status is JobStatus.ABORTED, state
    assert [s.attempts for s in state.steps] == [0, 0]  # no step ran
    assert await _orders(orders_db) == 0
    assert await banks.balances() == (100, 0)


@pytest.mark.e2e
async def test_killed_after_commit_succeeds(
    tm: TmServer,
    tm_client: TmClient,
    banks: Banks,
    orders_db: AsyncEngine,
    order_server: ParticipantServer,
) -> None:
    gid = await _place_and_kill("before-submit", tm, banks, orders_db, order_server.target)
    assert await _orders(orders_db) == 1  # the order committed, the job is still prepared
    state = await _wait_final(tm_client, gid)
    assert state.status is JobStatus.SUCCEEDED, state
    assert await banks.balances() == (70, 30)
