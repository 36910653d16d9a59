"""The scale scenario runs end to end on a small table and reports every measurement.

A benchmark, not a timed test: nothing here asserts speed, only that every call was
measured, the plans were taken and the purge deleted what it was asked to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_scale_run_measures_every_call(pg_url: str, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = [
        sys.executable,
        "-m",
        "bench",
        "--smoke",
        "--scenario",
        "scale:rows=500",
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
    [scale] = json.loads(out.read_text())["scales"]
    assert scale["rows"] == 500
    assert scale["list"] and all(v["p50_ms"] > 0 for v in scale["list"].values())
    assert all(scale["plans"].values())
    assert scale["write_path"]["submit_3_steps"]["p50_ms"] > 0
    assert scale["console"]["jobs page"]["p50_ms"] > 0
    assert "LockRows" in scale["write_path"]["claim_plan"]
    assert scale["purge"]["deleted"] == 51  # rows // 10, plus the one at the cut
    assert "at 500 finished jobs" in proc.stdout
