"""CPU time of process trees, read from ``/proc/<pid>/stat`` (Linux).

A tree's CPU is the user + system time of every live process under its root, plus the
time of the descendants the root already reaped (``cutime``/``cstime``), so a worker
or a Postgres backend that exits inside the window is not lost. Threads count with
their process, which is what matters for grpc's C-core threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcStat", "read_all", "tree_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of one ``/proc/<pid>/stat`` line that CPU accounting needs."""

    pid: int
    ppid: int
    cpu: float  # own utime + stime, seconds
    children_cpu: float  # reaped descendants' cutime + cstime, seconds


def parse_stat(line: str) -> ProcStat:
    """Parse a ``/proc/<pid>/stat`` line (the command name may hold spaces and parens)."""
    head, _, rest = line.rpartition(")")
    pid = int(head.split("(", 1)[0])
    f = rest.split()
    # f[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(x) for x in f[11:15])
    return ProcStat(pid, int(f[1]), (utime + stime) / _TICKS, (cutime + cstime) / _TICKS)


def read_all(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process visible now."""
    out: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            st = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        out[st.pid] = st
    return out


def tree_cpu_seconds(stats: Mapping[int, ProcStat], roots: Iterable[int]) -> float | None:
    """CPU seconds of the trees under ``roots``; None when no root is alive."""
    children: dict[int, list[int]] = {}
    for st in stats.values():
        children.setdefault(st.ppid, []).append(st.pid)
    total = 0.0
    found = False
    for root in roots:
        if root not in stats:
            continue
        found = True
        total += stats[root].children_cpu
        stack = [root]
        while stack:
            pid = stack.pop()
            total += stats[pid].cpu
            stack.extend(children.get(pid, ()))
    return total if found else None
