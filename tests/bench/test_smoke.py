"""The benchmark runs end to end (``--smoke``: a few jobs) and reports sane numbers.

A benchmark, not a timed test: nothing here asserts speed, only that every part ran
(TM closed and open loop, DBOS), every job succeeded and the counters add up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_report(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    args = [
        sys.executable,
        "-m",
        "bench",
        "--smoke",
        "--database-url",
        pg_url,
        "--db-prefix",
        f"bench_{uuid.uuid4().hex[:8]}",
        "--json",
        str(out / "result.json"),
        "--run-dir",
        str(out / "run"),
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    assert "jobs/s" in proc.stdout  # the table
    report: dict[str, Any] = json.loads((out / "result.json").read_text())
    return report


def test_every_scenario_ran_and_every_job_succeeded(smoke_report: dict[str, Any]) -> None:
    scenarios = {s["name"]: s for s in smoke_report["scenarios"]}
    assert [s["system"] for s in smoke_report["scenarios"]] == ["tm", "tm", "dbos"]
    assert {s["load"]["mode"] for s in scenarios.values() if s["system"] == "tm"} == {
        "closed",
        "open",
    }
    for s in scenarios.values():
        assert s["jobs"] > 0, s["name"]
        assert s["failures_total"] == 0, s["load_process"]["errors"]
        assert s["jobs_total"] >= s["jobs"]
        assert s["jobs_per_second"] > 0
        lat = s["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert s["steps_per_second"] == pytest.approx(s["jobs_per_second"] * 3, rel=1e-3)


def test_cpu_and_postgres_counters_are_measured(smoke_report: dict[str, Any]) -> None:
    for s in smoke_report["scenarios"]:
        engine = "tm" if s["system"] == "tm" else "engine"
        assert s["cpu_ms_per_job"][engine] > 0
        assert s["cpu_ms_per_job"]["postgres"] > 0  # the server runs on this machine
        pg = s["postgres"]
        assert pg["jobs"] == s["jobs_total"]
        assert pg["commits_per_job"] > 0
        assert pg["row_writes_per_job"] > 0
        assert pg["wal_bytes_per_job"] > 0
    tm = smoke_report["scenarios"][0]
    assert tm["cpu_ms_per_job"]["participants"] > 0
    assert tm["cpu_ms_per_job"]["load"] > 0
    # Every job is stored once, with its three steps (the counters are complete).
    rows = tm["postgres"]["rows_per_job_by_table"]
    assert rows["stepping_transactions"]["ins"] == pytest.approx(1.0)
    assert rows["stepping_steps"]["ins"] == pytest.approx(3.0)


def test_dbos_ran_and_the_ratio_and_targets_are_reported(smoke_report: dict[str, Any]) -> None:
    dbos = smoke_report["scenarios"][-1]
    assert dbos["load_process"]["mode"] == "async"
    # Three step outputs per workflow, stored in DBOS's own tables.
    assert dbos["postgres"]["rows_per_job_by_table"]["operation_outputs"]["ins"] == pytest.approx(
        3.0
    )
    assert smoke_report["ratio_tm_over_dbos"] > 0
    targets = {t["target"]: t for t in smoke_report["targets"]}
    assert targets[">= 8x DBOS workflows/s"]["value"] == pytest.approx(
        smoke_report["ratio_tm_over_dbos"], rel=1e-3
    )
    assert targets["<= 2 Postgres commits/job"]["met"] in (True, False)
    assert smoke_report["smoke"] is True
    m = smoke_report["machine"]
    assert m["cpus"] >= 1 and m["python"] and smoke_report["postgres"]["version"]
