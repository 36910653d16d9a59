"""``serve --workers N --metrics-port P``: worker i serves its own metrics on P + i."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from stepping.tm.v1 import tm_pb2 as S

from tests.e2e.workers_pool import start_pool
from tests.integration.helpers import gid, step, tm_stub
from tests.integration.participant import Participant

pytestmark = pytest.mark.e2e


def _free_ports(n: int) -> int:
    """A port p with p .. p+n-1 free (for now)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


def _started(port: int) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "stepping_jobs_started"
        for sample in family.samples
        if sample.name == "stepping_jobs_started_total"
    )


async def test_each_worker_serves_its_own_metrics_port(
    database_url: str, participant: Participant
) -> None:
    metrics = _free_ports(2)
    proc, log, listen = await start_pool(database_url, "--metrics-port", str(metrics))
    try:
        assert log.read_text().count("listening on") == 2, log.read_text()
        jobs = 8
        async with tm_stub(f"127.0.0.1:{listen}") as stub:
            for _ in range(jobs):
                await stub.Submit(
                    S.SubmitRequest(
                        gid=gid(), steps=[step(participant.target, "/w.v1.W/Do")], wait_result=True
                    )
                )
        counts = [await asyncio.to_thread(_started, metrics + i) for i in range(2)]
        assert sum(counts) == jobs, counts
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
