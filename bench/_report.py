"""The results: one table for the terminal, the same numbers (and more) as JSON."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench._loadgen import LoadShape
from bench._options import Options
from bench._records import WindowStats

if TYPE_CHECKING:
    from bench._drain import DrainResult

__all__ = ["Report", "ScenarioResult"]

SCHEMA = 1


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    system: str  # "tm" or "dbos"
    shape: LoadShape
    steps: int
    workers: int
    channels: int
    window: WindowStats
    jobs_total: int
    failures_total: int
    cpu_ms_per_job: dict[str, float | None]
    cpu_cores: dict[str, float | None]
    engine_processes: dict[str, float]
    pg: dict[str, Any]
    load: dict[str, Any]
    profile: dict[str, Any] | None = None

    @property
    def jobs_per_second(self) -> float:
        return self.window.jobs_per_second

    def worker_split(self) -> str:
        """Each TM process's share of the TM's CPU, when there are several ("55/45%")."""
        busy = sorted((v for v in self.engine_processes.values() if v > 0.05), reverse=True)
        total = sum(busy)
        if len(busy) < 2 or total <= 0:
            return "-"
        return "/".join(f"{v / total * 100:.0f}" for v in busy) + "%"

    @property
    def engine_cpu(self) -> float | None:
        return self.cpu_ms_per_job.get("tm" if self.system == "tm" else "engine")

    def one_line(self) -> str:
        w = self.window
        cpu = self.engine_cpu
        return (
            f"{w.jobs_per_second:.1f} jobs/s, p50 {w.p50:.1f} ms, p99 {w.p99:.1f} ms, "
            f"{'?' if cpu is None else f'{cpu:.2f}'} ms CPU/job, "
            f"{self.pg['commits_per_job']:.2f} commits/job, "
            f"{self.failures_total} failed of {self.jobs_total}"
        )

    def to_dict(self) -> dict[str, Any]:
        w = self.window
        return {
            "name": self.name,
            "system": self.system,
            "load": {**self.shape.to_dict(), "steps": self.steps, "channels": self.channels},
            "workers": self.workers,
            "window_seconds": round(w.seconds, 3),
            "jobs": w.jobs,
            "failures": w.failures,
            "jobs_total": self.jobs_total,
            "failures_total": self.failures_total,
            "jobs_per_second": _num(w.jobs_per_second),
            "steps_per_second": _num(w.jobs_per_second * self.steps),
            "latency_ms": {
                "p50": _num(w.p50),
                "p95": _num(w.p95),
                "p99": _num(w.p99),
                "max": _num(w.max),
                "mean": _num(w.mean),
            },
            "cpu_ms_per_job": {k: _num(v) for k, v in self.cpu_ms_per_job.items()},
            "cpu_cores_used": {k: _num(v) for k, v in self.cpu_cores.items()},
            "engine_process_cpu_seconds": self.engine_processes,
            "postgres": self.pg,
            "load_process": self.load,
            "profile": self.profile,
        }


def _num(x: float | None, digits: int = 4) -> float | None:
    if x is None or math.isnan(x):
        return None
    return round(x, digits)


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None or math.isnan(x):
        return "-"
    return f"{x:,.{digits}f}"


_ROWS: list[tuple[str, Callable[[ScenarioResult], str]]] = [
    ("jobs/s", lambda r: _fmt(r.jobs_per_second)),
    ("steps/s", lambda r: _fmt(r.jobs_per_second * r.steps)),
    ("latency p50 ms", lambda r: _fmt(r.window.p50)),
    ("latency p95 ms", lambda r: _fmt(r.window.p95)),
    ("latency p99 ms", lambda r: _fmt(r.window.p99)),
    ("latency max ms", lambda r: _fmt(r.window.max)),
    ("jobs measured / failed", lambda r: f"{r.window.jobs} / {r.failures_total}"),
    ("CPU ms/job: TM (DBOS: its process)", lambda r: _fmt(r.engine_cpu, 2)),
    ("TM CPU split over workers", lambda r: r.worker_split()),
    ("CPU ms/job: participants", lambda r: _fmt(r.cpu_ms_per_job.get("participants"), 2)),
    ("CPU ms/job: load generator", lambda r: _fmt(r.cpu_ms_per_job.get("load"), 2)),
    ("CPU ms/job: Postgres", lambda r: _fmt(r.cpu_ms_per_job.get("postgres"), 2)),
    ("Postgres commits/job", lambda r: _fmt(r.pg["commits_per_job"], 2)),
    ("  of them writing (xids)/job", lambda r: _fmt(r.pg["write_transactions_per_job"], 2)),
    ("Postgres rollbacks/job", lambda r: _fmt(r.pg["rollbacks_per_job"], 2)),
    ("Postgres WAL fsyncs/job", lambda r: _fmt(r.pg["wal_fsyncs_per_job"], 2)),
    ("Postgres row writes/job", lambda r: _fmt(r.pg["row_writes_per_job"], 2)),
    ("Postgres WAL bytes/job", lambda r: _fmt(r.pg["wal_bytes_per_job"], 0)),
]


@dataclass
class Report:
    opts: Options
    machine: dict[str, Any]
    postgres: dict[str, Any]
    results: list[ScenarioResult]
    drains: list[DrainResult] = field(default_factory=list)
    scales: list[dict[str, Any]] = field(default_factory=list)

    def _tm(
        self, mode: str, *, workers: int = 1, rate: float | None = None
    ) -> ScenarioResult | None:
        for r in self.results:
            if r.system != "tm" or r.shape.mode != mode or r.workers != workers:
                continue
            if rate is None or r.shape.rate == rate:
                return r
        return None

    def _dbos(self) -> ScenarioResult | None:
        return next((r for r in self.results if r.system == "dbos"), None)

    def ratio(self) -> float | None:
        tm, dbos = self._tm("closed"), self._dbos()
        if tm is None or dbos is None or not dbos.jobs_per_second:
            return None
        return tm.jobs_per_second / dbos.jobs_per_second

    def targets(self) -> list[dict[str, Any]]:
        """Issue #6's targets, each with the measured value and whether it is met."""
        out: list[dict[str, Any]] = []

        def add(name: str, value: float | None, ok: bool | None, note: str = "") -> None:
            out.append({"target": name, "value": _num(value), "met": ok, "note": note})

        closed, open50, ratio = self._tm("closed"), self._tm("open", rate=50.0), self.ratio()
        if closed is not None:
            w = closed.window
            short = "" if w.seconds >= 59 else f"window {w.seconds:.0f}s, target says 60 s"
            add(">= 800 jobs/s (closed loop)", w.jobs_per_second, w.jobs_per_second >= 800, short)
            add("p99 < 150 ms at that load", w.p99, w.p99 < 150)
            cpu = closed.engine_cpu
            add("TM CPU <= 1.0 ms/job", cpu, None if cpu is None else cpu <= 1.0)
            commits = closed.pg["commits_per_job"]
            add("<= 2 Postgres commits/job", commits, commits <= 2.0)
        if open50 is not None:
            add("p50 < 10 ms at 50 jobs/s (open loop)", open50.window.p50, open50.window.p50 < 10)
        if ratio is not None:
            add(">= 8x DBOS workflows/s", ratio, ratio >= 8.0)
        if self.opts.steps != 3:
            for t in out:
                t["note"] = (t["note"] + "; " if t["note"] else "") + "targets are for 3 steps"
        return out

    def table(self) -> str:
        drains = [f"{d.one_line()}" for d in self.drains] + [_scale_text(s) for s in self.scales]
        if not self.results:
            return "\n".join(drains)
        names = [r.name for r in self.results]
        label_w = max(len(label) for label, _ in _ROWS) + 2
        col_w = [max(len(n), 10) + 2 for n in names]
        lines = [" " * label_w + "".join(n.rjust(w) for n, w in zip(names, col_w, strict=True))]
        for label, cell in _ROWS:
            cells = "".join(cell(r).rjust(w) for r, w in zip(self.results, col_w, strict=True))
            lines.append(label.ljust(label_w) + cells)
        ratio = self.ratio()
        if ratio is not None:
            lines.append(f"\nTM ÷ DBOS throughput (closed loop, same concurrency): {ratio:.1f}x")
        pg = self.postgres
        lines.append(
            f"\n{self.machine['cpus']} CPUs ({self.machine['cpu_model']}), "
            f"Python {self.machine['python']}, {str(pg.get('version', '?')).split(' on ')[0]}"
            f" ({'embedded' if pg.get('embedded') else 'external'}, fsync={pg.get('fsync')}, "
            f"synchronous_commit={pg.get('synchronous_commit')}), {self.opts.steps} steps/job, "
            f"load average before {self.machine['load_average']}"
        )
        if self.opts.smoke:
            lines.append("SMOKE MODE: a few jobs, numbers mean nothing")
        targets = self.targets()
        if targets:
            lines.append("\ntargets (issue #6):")
            for t in targets:
                mark = {True: "met", False: "NOT met", None: "?"}[t["met"]]
                note = f"  ({t['note']})" if t["note"] else ""
                lines.append(f"  {t['target']:<40} {_fmt(t['value'], 2):>10}  {mark}{note}")
        for r in self.results:
            if r.profile:
                lines.append(_profile_text(r))
        if drains:
            lines.append("\nbacklog drains (issue 16):")
            lines += [f"  {d}" for d in drains]
        return "\n".join(lines)

    def to_json(self) -> str:
        o = self.opts
        doc = {
            "schema": SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "smoke": o.smoke,
            "command": " ".join(["scripts/bench", *sys.argv[1:]]),
            "settings": {
                "steps": o.steps,
                "payload_size": o.payload_size,
                "tm_env": o.tm_env,
                "dbos_mode": o.dbos_mode if o.dbos else None,
                "profile": o.profile,
            },
            "machine": self.machine,
            "postgres": self.postgres,
            "scenarios": [r.to_dict() for r in self.results],
            "drains": [d.to_dict() for d in self.drains],
            "scales": self.scales,
            "ratio_tm_over_dbos": _num(self.ratio()),
            "targets": self.targets(),
        }
        return json.dumps(doc, indent=2) + "\n"


def _scale_text(s: dict[str, Any]) -> str:
    lines = [f"at {s['rows']:,} finished jobs (p50 / p95 ms):"]
    for name, stats in {**s["list"], **s["count"], **s.get("console", {})}.items():
        lines.append(f"  {name:<40} {stats['p50_ms']:>8} {stats['p95_ms']:>8}")
    wp = s["write_path"]
    for name, stats in (
        ("GetTransaction", s["get"]),
        ("Submit(wait_result), 3 steps", wp["submit_3_steps"]),
        ("sweeper claim (nothing due)", wp["claim_due"]),
    ):
        lines.append(f"  {name:<40} {stats['p50_ms']:>8} {stats['p95_ms']:>8}")
    lines.append(f"  purge: {s['purge']['rows_per_second']} jobs/s")
    return "\n".join(lines)


def _profile_text(r: ScenarioResult, top: int = 15) -> str:
    p = r.profile or {}
    if "error" in p:
        return f"\nprofile of {r.name}: {p['error']}"
    lines = [
        f"\nprofile of {r.name} (py-spy, {p.get('samples', 0)} samples at {p.get('rate')}/s;"
        f" raw stacks in {p.get('raw')}):",
        "  by package (self):",
    ]
    lines += [f"    {e['share'] * 100:5.1f}%  {e['name']}" for e in p.get("packages", [])[:10]]
    lines.append("  top functions (self):")
    lines += [f"    {e['share'] * 100:5.1f}%  {e['name']}" for e in p.get("self", [])[:top]]
    lines.append("  top functions (inclusive):")
    lines += [f"    {e['share'] * 100:5.1f}%  {e['name']}" for e in p.get("inclusive", [])[:top]]
    return "\n".join(lines)
