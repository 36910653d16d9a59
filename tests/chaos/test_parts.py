"""The chaos suite's parts without its processes: fault decisions, the checks, the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bench.chaos._check import Snapshot, check
from bench.chaos._faults import Fault, FaultPlan
from bench.chaos._load import Effect, JobRecord, Recorder
from bench.chaos._proxy import CutProxy

pytestmark = pytest.mark.chaos


def test_faults_are_a_function_of_the_call_and_stop_after_max_attempt() -> None:
    plan = FaultPlan(before_commit=0.2, after_commit=0.2, crash_after_commit=0.1, seed=3)
    calls = [(f"g{i}", i % 3, "action", 1 + i % 2) for i in range(4000)]
    first = [plan.decide(*c) for c in calls]
    assert first == [plan.decide(*c) for c in calls]  # another process decides alike
    share = {f: first.count(f) / len(first) for f in Fault}
    assert share[Fault.NONE] == pytest.approx(0.5, abs=0.05)
    assert share[Fault.CRASH_AFTER_COMMIT] == pytest.approx(0.1, abs=0.03)
    assert {plan.decide(g, i, op, 3) for g, i, op, _ in calls} == {Fault.NONE}


# -- the checks ---------------------------------------------------------------------

OPENING = {("bank_a", "a0"): 100, ("bank_b", "b0"): 100}
TRANSFER = JobRecord(
    "t1", "transfer", "ok", (Effect("bank_a", "a0", -30), Effect("bank_b", "b0", 30))
)
ORDER = JobRecord("o1", "order", "commit", (Effect("bank_a", "a0", 5), Effect("bank_b", "b0", 5)))


def _healthy() -> tuple[Snapshot, Recorder]:
    snap = Snapshot(
        jobs={"t1": "SUCCEEDED", "o1": "SUCCEEDED"},
        balances={("bank_a", "a0"): 75, ("bank_b", "b0"): 135},
        ledger=[
            ("bank_a", "t1", 0, "action", "a0", -30),
            ("bank_b", "t1", 1, "action", "b0", 30),
            ("bank_a", "o1", 0, "action", "a0", 5),
            ("bank_b", "o1", 1, "action", "b0", 5),
        ],
        committed_orders={"o1"},
    )
    recorder = Recorder()
    recorder.acked.update({"t1", "o1"})
    recorder.codes[("Submit", "OK")] += 2
    return snap, recorder


def _failed(snap: Snapshot, recorder: Recorder) -> set[str]:
    invariants = check(snap, {"t1": TRANSFER, "o1": ORDER}, recorder, OPENING)
    return {i.name for i in invariants if not i.ok}


def test_a_consistent_end_state_passes_every_check() -> None:
    assert _failed(*_healthy()) == set()


def test_an_effect_applied_twice_breaks_money_and_exactly_once() -> None:
    snap, recorder = _healthy()
    snap.ledger.append(("bank_b", "t1", 1, "action", "b0", 30))
    snap.balances[("bank_b", "b0")] += 30
    assert _failed(snap, recorder) == {"money_conserved", "exactly_once"}


def test_a_committed_order_whose_job_aborted_breaks_the_2_phase_check() -> None:
    snap, recorder = _healthy()
    snap.jobs["o1"] = "ABORTED"
    snap.ledger = [row for row in snap.ledger if row[1] != "o1"]
    snap.balances = {("bank_a", "a0"): 70, ("bank_b", "b0"): 130}
    assert _failed(snap, recorder) == {"two_phase_atomic"}


def test_an_unfinished_job_fails_only_every_job_final() -> None:
    snap, recorder = _healthy()
    snap.jobs["o1"] = "SUBMITTED"  # its credit at bank_b has not run yet
    snap.ledger = [row for row in snap.ledger if row[1:3] != ("o1", 1)]
    snap.balances[("bank_b", "b0")] -= 5
    assert _failed(snap, recorder) == {"every_job_final"}
    snap.ledger.append(("bank_a", "o1", 0, "action", "a0", 5))  # ... but twice at bank_a
    snap.balances[("bank_a", "a0")] += 5
    assert _failed(snap, recorder) == {"every_job_final", "money_conserved", "exactly_once"}


def test_lost_open_and_internal_jobs_are_each_reported() -> None:
    snap, recorder = _healthy()
    recorder.acked.add("t-lost")
    recorder.codes[("Submit", "INTERNAL")] += 1
    snap.jobs["t1"] = "SUBMITTED"
    failed = _failed(snap, recorder)
    assert {"nothing_lost", "every_job_final", "no_internal"} <= failed


# -- the proxy ----------------------------------------------------------------------


@pytest_asyncio.fixture
async def echo_proxy() -> AsyncIterator[CutProxy]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    proxy = CutProxy("127.0.0.1", server.sockets[0].getsockname()[1])
    await proxy.start()
    yield proxy
    await proxy.close()
    server.close()
    await server.wait_closed()


async def _read(reader: asyncio.StreamReader) -> bytes:
    """Up to 4 bytes; b"" once the connection is closed (by FIN or by reset)."""
    try:
        return await asyncio.wait_for(reader.read(4), 5)
    except ConnectionResetError:
        return b""


async def _roundtrip(port: int) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await writer.drain()
    return await _read(reader), reader, writer


async def test_a_cut_closes_open_connections_and_refuses_new_ones(echo_proxy: CutProxy) -> None:
    data, reader, writer = await _roundtrip(echo_proxy.port)
    assert data == b"ping"
    await echo_proxy.cut()
    assert await _read(reader) == b""  # closed by the cut
    writer.close()
    data, _, writer = await _roundtrip(echo_proxy.port)
    assert data == b""  # accepted and closed at once
    writer.close()
    echo_proxy.restore()
    data, _, writer = await _roundtrip(echo_proxy.port)
    assert data == b"ping"
    writer.close()
    assert echo_proxy.refused == 1
