"""Metric values match the jobs run: counters, histograms, the due backlog, Prometheus."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Callable

import grpc
from prometheus_client.parser import text_string_to_metric_families
from stepping.tm.v1 import tm_pb2 as S

from tests.conftest import test_settings as settings_for
from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub, wait_status
from tests.integration.participant import FakeAnswer, Participant
from tests.telemetry.conftest import Metrics
from tm_service import TmServer
from tm_service.telemetry import METRICS, Telemetry, configure_telemetry

A, B, BAD = "/m.v1.S/A", "/m.v1.S/B", "/m.v1.S/Bad"


async def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_counters_and_histograms_match_the_jobs_run(
    database_url: str, metrics: Metrics, participant: Participant
) -> None:
    participant.fail_first[B] = 1  # every job's B fails once, then succeeds
    participant.fail(
        BAD,
        FakeAnswer(grpc.StatusCode.ABORTED, "no"),
        FakeAnswer(grpc.StatusCode.ABORTED, "no"),
    )
    server = TmServer(
        settings_for(database_url), telemetry=Telemetry(meter_provider=metrics.provider)
    )
    await server.start()
    try:
        async with tm_stub(server.target) as tm:
            t = participant.target
            for _ in range(4):  # succeed (B retried once)
                done = await tm.Submit(
                    S.SubmitRequest(
                        gid=gid(),
                        steps=[step(t, A), step(t, B, retry_policy=fast_retry())],
                        wait_result=True,
                    )
                )
                assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
            for _ in range(2):  # fail for good on their first step
                done = await tm.Submit(
                    S.SubmitRequest(gid=gid(), steps=[step(t, BAD), step(t, A)], wait_result=True)
                )
                assert done.transaction.status == S.TRANSACTION_STATUS_FAILED
            aborted = gid()  # prepared, then aborted by the client
            await tm.Prepare(
                S.PrepareRequest(
                    gid=aborted, steps=[step(t, A)], query_prepared=S.Endpoint(target=t)
                )
            )
            await tm.Abort(S.AbortRequest(gid=aborted))
            checked = gid()  # prepared, submitted by the TM's back-check
            await tm.Prepare(
                S.PrepareRequest(
                    gid=checked,
                    steps=[step(t, A)],
                    query_prepared=S.Endpoint(target=t),
                    options=S.TransactionOptions(check_prepared_after=dur(0.05)),
                )
            )
            await wait_status(tm, checked, S.TRANSACTION_STATUS_SUCCEEDED)
        await _eventually(lambda: metrics.sum("stepping.jobs.finished") == 8)
    finally:
        await server.stop(grace=1.0)

    assert metrics.sum("stepping.jobs.started") == 8
    assert metrics.sum("stepping.jobs.started", **{"stepping.mode": "message"}) == 8
    finished = {
        status: metrics.sum("stepping.jobs.finished", **{"stepping.status": status})
        for status in ("SUCCEEDED", "FAILED", "ABORTED")
    }
    assert finished == {"SUCCEEDED": 5, "FAILED": 2, "ABORTED": 1}
    assert metrics.sum("stepping.job.duration") == 8
    attempts = {
        (p.attributes["stepping.op"], p.attributes["stepping.outcome"]): p.value
        for p in metrics.points("stepping.step.attempts")
    }
    assert attempts == {
        ("action", "OK"): 9,  # A: 4 + 1 (the back-checked job), B: 4
        ("action", "UNAVAILABLE"): 4,
        ("action", "ABORTED"): 2,
        ("query_prepared", "OK"): 1,
    }
    durations = {
        (p.attributes["stepping.op"], p.attributes["stepping.outcome"]): p.count
        for p in metrics.points("stepping.step.duration")
    }
    assert durations == attempts
    (step_seconds,) = [
        p
        for p in metrics.points("stepping.step.duration")
        if p.attributes["stepping.op"] == "action" and p.attributes["stepping.outcome"] == "OK"
    ]
    assert 0 < step_seconds.sum < 9 * 1.0  # seconds, not milliseconds
    assert 0.001 in step_seconds.explicit_bounds  # buckets sized for seconds


async def test_the_due_backlog_gauges_report_jobs_waiting_for_a_replica(
    database_url: str, metrics: Metrics, participant: Participant
) -> None:
    # The sweeper looks once at start, then not for an hour: due jobs stay unclaimed.
    server = TmServer(
        settings_for(database_url, poll_interval_seconds=3600),
        telemetry=Telemetry(meter_provider=metrics.provider),
        backlog_interval=0.05,
    )
    await server.start()
    try:
        await _eventually(lambda: bool(metrics.points("stepping.jobs.due")))
        assert metrics.sum("stepping.jobs.due") == 0
        assert metrics.sum("stepping.jobs.oldest_due_age") == 0
        async with tm_stub(server.target) as tm:
            gids = [gid(), gid()]
            for g in gids:
                await tm.Prepare(
                    S.PrepareRequest(
                        gid=g,
                        steps=[step(participant.target, A)],
                        query_prepared=S.Endpoint(target=participant.target),
                        options=S.TransactionOptions(check_prepared_after=dur(0)),
                    )
                )
            await _eventually(lambda: metrics.sum("stepping.jobs.due") == 2)
            await asyncio.sleep(0.3)
            await _eventually(lambda: metrics.sum("stepping.jobs.oldest_due_age") >= 0.3)
            for g in gids:
                await tm.Abort(S.AbortRequest(gid=g))
            await _eventually(lambda: metrics.sum("stepping.jobs.due") == 0)
            assert metrics.sum("stepping.jobs.oldest_due_age") == 0
    finally:
        await server.stop(grace=1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_the_prometheus_port_serves_every_metric(
    database_url: str, participant: Participant
) -> None:
    port = _free_port()
    settings = settings_for(database_url, metrics_port=port)
    telemetry = configure_telemetry(settings, {})  # metrics_port alone turns metrics on
    assert telemetry.metrics and not telemetry.tracing
    assert telemetry.prometheus_address == ("0.0.0.0", port)
    server = TmServer(settings, telemetry=telemetry, backlog_interval=0.05)
    await server.start()
    try:
        async with tm_stub(server.target) as tm:
            await tm.Submit(
                S.SubmitRequest(gid=gid(), steps=[step(participant.target, A)], wait_result=True)
            )
        await asyncio.sleep(0.1)  # a backlog reading
        text = await asyncio.to_thread(_scrape, port)
    finally:
        await server.stop(grace=1.0)
        telemetry.shutdown()
    samples = {
        (
            sample.name,
            tuple(sorted((k, v) for k, v in sample.labels.items() if "scope" not in k)),
        ): (sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    ok = (("stepping_op", "action"), ("stepping_outcome", "OK"))
    succeeded = (("stepping_mode", "message"), ("stepping_status", "SUCCEEDED"))
    assert samples[("stepping_jobs_started_total", (("stepping_mode", "message"),))] == 1
    assert samples[("stepping_jobs_finished_total", succeeded)] == 1
    assert samples[("stepping_step_attempts_total", ok)] == 1
    assert samples[("stepping_step_duration_seconds_count", ok)] == 1
    assert samples[("stepping_job_duration_seconds_count", succeeded)] == 1
    assert samples[("stepping_jobs_due", ())] == 0
    assert samples[("stepping_jobs_oldest_due_age_seconds", ())] == 0
    # Every metric of the README's table, under its Prometheus name.
    families = {family.name for family in text_string_to_metric_families(text)}
    for name, (unit, _) in METRICS.items():
        prometheus = name.replace(".", "_") + ("_seconds" if unit == "s" else "")
        assert prometheus in families, (prometheus, families)
    try:
        _scrape(port)
    except OSError:
        pass
    else:
        raise AssertionError("the metrics port is still open after shutdown")
