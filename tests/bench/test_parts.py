"""The benchmark's arithmetic, without processes: CPU accounting, windows, encoding."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from stepping.tm.v1 import tm_pb2

from bench._cli import parse_args, parse_scenario
from bench._client import build_submit_prefix, encode_submit
from bench._cpu import ProcStat, parse_stat, tree_cpu_seconds
from bench._loadgen import LoadShape
from bench._profile import package_of, summarize
from bench._records import OK, RPC_ERROR, Records, percentile


def test_stat_line_with_spaces_and_parens_in_the_name() -> None:
    fields = ["S", "41"] + ["0"] * 9 + ["150", "50", "20", "30"] + ["0"] * 30
    st = parse_stat("1234 (my (odd) name) " + " ".join(fields))
    assert st.pid == 1234 and st.ppid == 41
    ticks = 200 / st.cpu  # utime + stime = 200 ticks
    assert st.children_cpu == pytest.approx(50 / ticks)


def test_tree_cpu_counts_descendants_and_reaped_children_but_not_strangers() -> None:
    stats = {
        10: ProcStat(10, 1, 1.0, 0.5),  # root, already reaped 0.5 s of children
        11: ProcStat(11, 10, 2.0, 0.0),
        12: ProcStat(12, 11, 3.0, 9.0),  # grandchild; its own reaped time is not ours
        20: ProcStat(20, 1, 100.0, 0.0),
    }
    assert tree_cpu_seconds(stats, [10]) == pytest.approx(6.5)
    assert tree_cpu_seconds(stats, [11, 20]) == pytest.approx(105.0)
    assert tree_cpu_seconds(stats, [99]) is None


def test_window_counts_jobs_finished_inside_it() -> None:
    rec = Records()
    rec.add(0.0, 0.5, OK)  # before the window
    for i in range(100):
        rec.add(1.0 + i * 0.01, 1.0 + i * 0.01 + (i + 1) / 1000, OK)  # 1..100 ms
    rec.add(1.5, 1.6, RPC_ERROR)
    rec.add(2.5, 3.5, OK)  # after the window
    w = rec.window(1.0, 3.0)
    assert w.jobs == 100 and w.failures == 1
    assert w.jobs_per_second == pytest.approx(50.0)
    assert w.p50 == pytest.approx(50.0) and w.p99 == pytest.approx(99.0)
    assert w.max == pytest.approx(100.0)
    assert rec.failures() == 1


def test_records_round_trip(tmp_path: Path) -> None:
    rec = Records()
    rec.add(1.0, 2.0, OK)
    rec.add(3.0, 4.5, RPC_ERROR)
    rec.save(tmp_path / "r")
    back = Records.load(tmp_path / "r")
    assert list(back.start) == [1.0, 3.0] and list(back.end) == [2.0, 4.5]
    assert list(back.outcome) == [OK, RPC_ERROR]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert math.isnan(percentile([], 50))


def test_pre_encoded_submit_equals_the_message() -> None:
    steps = [("127.0.0.1:1", "/bench.Participant/Step"), ("127.0.0.1:2", "/b.P/S")]
    rest = build_submit_prefix(steps, b"xyz")
    gid = "b1234-" + "7" * 200  # a length that needs a two-byte varint
    decoded = tm_pb2.SubmitRequest.FromString(encode_submit(gid, rest))
    assert decoded.gid == gid and decoded.wait_result
    assert [(s.action.target, s.action.method) for s in decoded.steps] == steps
    assert all(s.payload == b"xyz" for s in decoded.steps)


def test_scenarios_from_the_command_line() -> None:
    base = LoadShape(concurrency=64, rate=50)
    sc = parse_scenario("closed:c=32,workers=2", base, 1, None)
    assert (sc.shape.mode, sc.shape.concurrency, sc.workers, sc.channels) == ("closed", 32, 2, 64)
    assert sc.name == "TM closed c=32 w=2 ch=64"
    assert parse_scenario("open:rate=50", base, 1, None).name == "TM open 50/s"
    with pytest.raises(ValueError):
        parse_scenario("sideways", base, 1, None)
    opts = parse_args(["--suite", "--duration", "20"])
    assert [s.name for s in opts.scenarios] == [
        "TM closed c=64",
        "TM open 50/s",
        "TM closed c=64 w=2 ch=64",
    ]
    assert opts.dbos and opts.scenarios[0].shape.duration == 20
    assert parse_args(["--rate", "100"]).scenarios[0].shape.mode == "open"


def test_profile_summary_ranks_self_time_and_packages() -> None:
    site = "/v/lib/python3.11/site-packages"
    raw = "\n".join(
        [
            f'process 1:"tm";<module> (/v/bin/tm);a (/r/tm_service/x.py);b ({site}/grpc/c.py) 30',
            "<module> (/v/bin/tm);a (/r/tm_service/x.py) 10",
            f"c ({site}/sqlalchemy/e.py);d ({site}/asyncpg/f.py) 60",
        ]
    )
    s = summarize(raw)
    assert s["samples"] == 100
    assert s["self"][0] == {"name": "d (asyncpg/f.py)", "samples": 60, "share": 0.6}
    assert [p["name"] for p in s["packages"]] == ["asyncpg", "grpc", "tm_service"]
    incl = {e["name"]: e["samples"] for e in s["inclusive"]}
    assert incl["a (tm_service/x.py)"] == 40 and "<module> (/v/bin/tm)" not in incl
    assert package_of("/usr/lib/python3.11/asyncio/events.py") == "stdlib:asyncio"
