"""The chaos suite of the Stepping TM (issue #11): ``python -m bench.chaos`` / ``scripts/chaos``.

Real processes under real faults, then invariants read from the databases. See the
README's Chaos section and ``python -m bench.chaos --help``.

The public names are imported on first use: the run's child processes (participants,
the Postgres helper) live in this package too and should not pay for the orchestrator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.chaos._check import Invariant
    from bench.chaos._config import PRESETS, ChaosConfig
    from bench.chaos._faults import FaultPlan
    from bench.chaos._procs import ChaosError
    from bench.chaos._report import ChaosReport
    from bench.chaos._run import run_chaos

__all__ = [
    "PRESETS",
    "ChaosConfig",
    "ChaosError",
    "ChaosReport",
    "FaultPlan",
    "Invariant",
    "run_chaos",
]

_HOME = {
    "Invariant": "_check",
    "PRESETS": "_config",
    "ChaosConfig": "_config",
    "FaultPlan": "_faults",
    "ChaosError": "_procs",
    "ChaosReport": "_report",
    "run_chaos": "_run",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'bench.chaos' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bench.chaos.{_HOME[name]}"), name)
