"""The chaos suite end to end (bench/chaos): a short run under every kind of fault must
hold its invariants, and the same harness with the barrier off must report a violation.

Each run starts its own Postgres cluster, TM replicas and participants as processes
(about a minute on a 2-core machine for the short run, half of that without the chaos).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from bench.chaos import PRESETS, ChaosReport, run_chaos

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]


@pytest_asyncio.fixture(scope="module")
async def short_run(tmp_path_factory: pytest.TempPathFactory) -> ChaosReport:
    # Each assertion carries the run's summary, which names what broke; the logs stay
    # in the run directory.
    return await run_chaos(replace(PRESETS["short"], run_dir=tmp_path_factory.mktemp("chaos")))


async def test_short_run_injects_every_fault(short_run: ChaosReport) -> None:
    counts = short_run.chaos["counts"]
    assert counts.get("tm_kill", 0) >= 2, short_run.summary()
    assert counts.get("participant_kill", 0) >= 1, short_run.summary()
    assert counts.get("pg_restart", 0) == 1, short_run.summary()
    assert counts.get("proxy_cut", 0) == 1, short_run.summary()
    faults = short_run.chaos["step_faults"]
    assert faults.get("before_commit", 0) > 0 and faults.get("after_commit", 0) > 0, faults
    assert short_run.jobs["sent"] == PRESETS["short"].jobs
    assert short_run.clients["simulated_client_deaths"] > 0  # the back-check had work
    assert short_run.timings["wall"] < 150


@pytest.mark.parametrize(
    "name",
    ["nothing_lost", "every_job_final", "money_conserved", "exactly_once", "two_phase_atomic"],
)
async def test_short_run_holds(short_run: ChaosReport, name: str) -> None:
    assert short_run.invariant(name).ok, short_run.summary()


async def test_short_run_clients_never_see_internal(short_run: ChaosReport) -> None:
    assert short_run.invariant("no_internal").ok, short_run.summary()


async def test_without_the_barrier_money_and_exactly_once_fail(tmp_path: Path) -> None:
    report = await run_chaos(replace(PRESETS["no-barrier"], run_dir=tmp_path))
    assert report.chaos["step_faults"].get("after_commit", 0) > 0
    assert set(report.failed()) >= {"money_conserved", "exactly_once"}, report.summary()
    assert report.invariant("exactly_once").violations > 0
    # The faults are the participants' own: the TM still loses nothing and finishes all.
    assert report.invariant("nothing_lost").ok, report.summary()
    assert report.invariant("every_job_final").ok, report.summary()
