"""Interop: the TypeScript example client and participant (examples/ts) against a real TM.

The TS client submits, over the generated gen/ts stubs and connect-node's gRPC
transport, a saga of a TypeScript step (examples/ts participant, @grpc/grpc-js)
and a Python step (a participant_sdk server in this process); the TM in this
process runs both.

Needs node and `npm ci` in gen/ts and examples/ts (scripts/install-stub-toolchains).
Without them the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from participant_sdk import ParticipantServer, info, step
from tm_service import TmServer

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ts"
NODE = shutil.which("node")
SHIPPING_SERVICE = "shipping.v1.Shipping"

pytestmark = pytest.mark.timeout(120)


def _require_toolchain() -> None:
    missing = [
        str(p.relative_to(REPO))
        for p in (EXAMPLE / "node_modules", REPO / "gen" / "ts" / "node_modules")
        if not p.is_dir()
    ]
    if NODE is None:
        missing.append("node")
    if not missing:
        return
    message = f"{', '.join(missing)} missing: run scripts/install-stub-toolchains"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def built_example() -> Path:
    """examples/ts compiled (with gen/ts/src) into examples/ts/dist."""
    _require_toolchain()
    versions = {
        json.loads((d / "node_modules/@bufbuild/protobuf/package.json").read_text())["version"]
        for d in (EXAMPLE, REPO / "gen" / "ts")
    }
    assert len(versions) == 1, f"gen/ts and examples/ts pin different @bufbuild/protobuf {versions}"
    shutil.rmtree(EXAMPLE / "dist", ignore_errors=True)
    subprocess.run(
        [str(EXAMPLE / "node_modules/.bin/tsc"), "-p", str(EXAMPLE / "tsconfig.json")],
        check=True,
        timeout=120,
    )
    return EXAMPLE / "dist" / "examples" / "ts" / "src"


@dataclass
class Shipment:
    order_id: str
    address: str


@dataclass
class Label:
    tracking: str


shipped: list[tuple[str, int, Shipment, dict[str, str]]] = []


@step(name="Ship")
async def ship(s: Shipment) -> Label:
    call = info()
    shipped.append((call.gid, call.step_index, s, dict(call.headers)))
    return Label(tracking=f"track-{s.order_id}")


@pytest_asyncio.fixture
async def python_participant() -> AsyncIterator[ParticipantServer]:
    shipped.clear()
    async with ParticipantServer(steps=[ship], service=SHIPPING_SERVICE, host="127.0.0.1") as srv:
        yield srv


class TsParticipant:
    """examples/ts participant.js in a subprocess; its JSON lines as events."""

    def __init__(self, proc: asyncio.subprocess.Process, target: str) -> None:
        self.proc = proc
        self.target = target
        self.events: list[dict[str, Any]] = []

    async def drain(self) -> list[dict[str, Any]]:
        """Events printed so far (non-blocking beyond a short read)."""
        assert self.proc.stdout is not None
        while True:
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), 0.2)
            except TimeoutError:
                break
            if not line:
                break
            self.events.append(json.loads(line))
        return self.events


@pytest_asyncio.fixture
async def ts_participant(built_example: Path) -> AsyncIterator[TsParticipant]:
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(built_example / "participant.js"),
        "--port",
        "0",
        "--stock",
        "widget=5",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    assert first["event"] == "listening"
    try:
        yield TsParticipant(proc, first["target"])
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def _run_client(
    built_example: Path, tm: TmServer, *args: str
) -> tuple[int, dict[str, Any], str]:
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(built_example / "client.js"),
        "--tm",
        tm.target,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    result = json.loads(out) if out.strip() else {}
    return proc.returncode, result, err.decode()


async def _get(tm: TmServer, gid: str) -> tm_pb2.Transaction:
    async with grpc.aio.insecure_channel(tm.target) as channel:
        stub = tm_pb2_grpc.TransactionManagerServiceStub(channel)
        reply = await stub.GetTransaction(tm_pb2.GetTransactionRequest(gid=gid), timeout=5)
        return reply.transaction


async def test_ts_client_runs_a_ts_step_then_a_python_step(
    built_example: Path,
    tm: TmServer,
    ts_participant: TsParticipant,
    python_participant: ParticipantServer,
) -> None:
    code, result, err = await _run_client(
        built_example,
        tm,
        "--inventory",
        ts_participant.target,
        "--shipping",
        python_participant.target,
        "--shipping-method",
        python_participant.endpoint(ship).method,
        "--sku",
        "widget",
        "--quantity",
        "2",
        "--order-id",
        "o-1",
    )
    assert code == 0, (result, err)
    assert result["status"] == "SUCCEEDED"
    gid = result["gid"]
    assert [s["status"] for s in result["steps"]] == ["SUCCEEDED", "SUCCEEDED"]

    events = [e for e in await ts_participant.drain() if e["event"] == "reserve"]
    (reserve,) = events
    assert (reserve["gid"], reserve["stepIndex"], reserve["op"]) == (gid, 0, "action")
    assert (reserve["sku"], reserve["quantity"], reserve["outcome"]) == ("widget", 2, "reserved")
    assert reserve["stepName"] == "reserve-stock"

    ((ship_gid, ship_index, shipment, headers),) = shipped
    assert (ship_gid, ship_index) == (gid, 1)
    assert shipment == Shipment(order_id="o-1", address="1 Example Street")
    assert headers.get("x-client") == "stepping-example-ts"

    # The TM kept each participant's raw answer: JSON from TS, JSON from Python.
    tx = await _get(tm, gid)
    assert tx.status == tm_pb2.TRANSACTION_STATUS_SUCCEEDED
    assert json.loads(tx.steps[0].result) == {"reservationId": "o-1-widget", "left": 3}
    assert json.loads(tx.steps[1].result) == {"tracking": "track-o-1"}
    assert [s["result"] for s in result["steps"]] == [
        r.decode() for r in (tx.steps[0].result, tx.steps[1].result)
    ]


async def test_ts_step_business_failure_fails_the_job_before_the_python_step(
    built_example: Path,
    tm: TmServer,
    ts_participant: TsParticipant,
    python_participant: ParticipantServer,
) -> None:
    code, result, err = await _run_client(
        built_example,
        tm,
        "--inventory",
        ts_participant.target,
        "--shipping",
        python_participant.target,
        "--shipping-method",
        python_participant.endpoint(ship).method,
        "--quantity",
        "99",
    )
    assert code == 3, (result, err)
    assert result["status"] == "FAILED"
    assert "only 5 of widget left" in result["steps"][0]["lastError"] + result["error"]
    assert shipped == [], "a step after a failed one must not run"
    events = [e for e in await ts_participant.drain() if e["event"] == "reserve"]
    # ABORTED is never retried: one action call. The saga may then compensate the
    # failed step itself (it could have half-happened); the participant must
    # answer that without giving back stock it never took.
    assert [e["outcome"] for e in events if e["op"] == "action"] == ["out-of-stock"]
    undo = [e["outcome"] for e in events if e["op"] == "compensate"]
    assert result["steps"][0]["status"] == ("COMPENSATED" if undo else "FAILED")
    assert undo in ([], ["released"])
