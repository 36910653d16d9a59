"""The backlog-drain scenario runs end to end on a small backlog and its counts add up.

A benchmark, not a timed test: nothing here asserts speed, only that the bulk-loaded
backlog was drained completely (every loaded job SUCCEEDED, with every step called),
fresh jobs ran meanwhile and memory was sampled.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_backlog_drains_while_fresh_jobs_succeed(pg_url: str, tmp_path: Path) -> None:
    out = tmp_path / "drain.json"
    args = [
        sys.executable,
        "-m",
        "bench",
        "--scenario",
        "drain:jobs=400,fresh=10",
        "--database-url",
        pg_url,
        "--db-prefix",
        f"bench_{uuid.uuid4().hex[:8]}",
        "--json",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(out.read_text())
    assert report["scenarios"] == []  # no closed/open scenario was asked for, so no DBOS
    [drain] = report["drains"]
    assert drain["jobs"] == drain["succeeded"] == 400
    assert drain["backlog_curve"][0][1] <= 400
    assert drain["backlog_curve"][-1][1] == 0
    assert drain["jobs_per_second"] > 0
    assert drain["fresh"]["failed"] == 0
    assert drain["fresh"]["count"] > 0
    assert drain["tm_rss_mib_max"] > 0
