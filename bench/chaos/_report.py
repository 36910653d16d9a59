"""The result of a run: a human summary and the same (and more) as JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos._check import Invariant

__all__ = ["ChaosReport"]


@dataclass
class ChaosReport:
    config: dict[str, Any]
    invariants: list[Invariant]
    jobs: dict[str, Any]
    """Counts: sent, stored, by kind/variant, final statuses, client outcomes."""
    chaos: dict[str, Any]
    """Counts of each event kind, restarts, the event log."""
    clients: dict[str, Any]
    """Status codes seen, retries on UNAVAILABLE, gave-ups."""
    timings: dict[str, float]
    run_dir: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.invariants)

    def invariant(self, name: str) -> Invariant:
        for inv in self.invariants:
            if inv.name == name:
                return inv
        raise KeyError(name)

    def failed(self) -> list[str]:
        return [i.name for i in self.invariants if not i.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed(),
            "invariants": {i.name: i.to_json() for i in self.invariants},
            "jobs": self.jobs,
            "chaos": self.chaos,
            "clients": self.clients,
            "timings": self.timings,
            "config": self.config,
            "run_dir": self.run_dir,
            "notes": self.notes,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")

    def summary(self) -> str:
        c = self.chaos["counts"]
        t = self.timings
        j = self.jobs
        lines = [
            f"chaos run: {j['sent']} jobs sent ({j['by_kind']}), {j['stored']} stored, "
            f"final {j['final_status']}",
            f"  faults: {c.get('tm_kill', 0)} TM SIGKILLs, "
            f"{c.get('participant_kill', 0)} participant SIGKILLs, "
            f"{c.get('pg_restart', 0)} Postgres restarts, {c.get('proxy_cut', 0)} proxy cuts, "
            f"{self.chaos['crashes_after_commit']} participant crashes after commit, "
            f"{self.chaos['tm_start_failures']} TM start failures, "
            f"{self.chaos['unexpected_exits']} other unexpected exits",
            f"  step faults injected by the banks: {self.chaos['step_faults']}",
            f"  clients: codes {self.clients['codes_total']}; "
            f"{self.clients['retries']} retries on UNAVAILABLE "
            f"(at most {self.clients['max_attempts_used']} attempts per job), "
            f"{self.clients['gave_up']} gave up",
            f"  time: {t['wall']:.1f}s wall (setup {t['setup']:.1f}s, load {t['load']:.1f}s, "
            f"drain {t['drain']:.1f}s)",
            "invariants:",
        ]
        for inv in self.invariants:
            mark = "ok  " if inv.ok else "FAIL"
            lines.append(f"  {mark} {inv.name:<18} {inv.detail}")
            for sample in inv.samples[: 3 if inv.ok else 5]:
                lines.append(f"         {sample}")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append("RESULT: " + ("all invariants hold" if self.ok else f"FAILED {self.failed()}"))
        return "\n".join(lines)


def count(values: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))
