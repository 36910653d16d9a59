"""What a load process records per job, and the numbers drawn from it for a window.

Each job is ``(start, end, outcome)`` on the system-wide monotonic clock, so the
orchestrator can cut the records at the times it sampled CPU and Postgres. ``start``
is the *scheduled* send time in open loop (coordinated omission: a late send counts
against the system, not for it).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OK", "RPC_ERROR", "WRONG_RESULT", "Records", "WindowStats", "percentile"]

OK = 0
WRONG_RESULT = 1  # the call returned, but the job is not SUCCEEDED
RPC_ERROR = 2


class Records:
    """Append-only job records, stored as three arrays of doubles."""

    def __init__(self) -> None:
        self.start = array("d")
        self.end = array("d")
        self.outcome = array("d")

    def add(self, start: float, end: float, outcome: int) -> None:
        self.start.append(start)
        self.end.append(end)
        self.outcome.append(float(outcome))

    def __len__(self) -> int:
        return len(self.end)

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            array("q", [len(self)]).tofile(f)
            for column in (self.start, self.end, self.outcome):
                column.tofile(f)

    @classmethod
    def load(cls, path: Path) -> Records:
        rec = cls()
        with path.open("rb") as f:
            count = array("q")
            count.fromfile(f, 1)
            for column in (rec.start, rec.end, rec.outcome):
                column.fromfile(f, count[0])
        return rec

    def window(self, t0: float, t1: float) -> WindowStats:
        """The jobs that *finished* within ``[t0, t1)``."""
        latencies: list[float] = []
        failures = 0
        for s, e, o in zip(self.start, self.end, self.outcome, strict=True):
            if t0 <= e < t1:
                if o == OK:
                    latencies.append((e - s) * 1000.0)
                else:
                    failures += 1
        return WindowStats.of(latencies, failures, t1 - t0)

    def failures(self) -> int:
        return sum(1 for o in self.outcome if o != OK)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class WindowStats:
    """Throughput and latency (ms) of the successful jobs in a window."""

    seconds: float
    jobs: int
    failures: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else math.nan

    @classmethod
    def of(cls, latencies_ms: list[float], failures: int, seconds: float) -> WindowStats:
        lat = sorted(latencies_ms)
        return cls(
            seconds=seconds,
            jobs=len(lat),
            failures=failures,
            p50=percentile(lat, 50),
            p95=percentile(lat, 95),
            p99=percentile(lat, 99),
            max=lat[-1] if lat else math.nan,
            mean=sum(lat) / len(lat) if lat else math.nan,
        )
