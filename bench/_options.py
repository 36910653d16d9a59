"""The options of one benchmark invocation and the TM scenarios they hold.

Parsed by ``_cli``, read by ``_run`` and ``_report``; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench._loadgen import LoadShape

__all__ = ["DrainScenario", "Options", "Scenario"]


@dataclass(frozen=True)
class Scenario:
    """One measurement of the TM: a load shape and how the TM runs."""

    shape: LoadShape
    workers: int = 1
    channels: int = 1

    @property
    def name(self) -> str:
        s = self.shape
        load = f"closed c={s.concurrency}" if s.mode == "closed" else f"open {s.rate:g}/s"
        extra = f" w={self.workers}" if self.workers > 1 else ""
        extra += f" ch={self.channels}" if self.channels > 1 else ""
        return f"TM {load}{extra}"


@dataclass(frozen=True)
class DrainScenario:
    """A backlog drain (``bench._drain``): ``--scenario drain:jobs=100000,workers=1,fresh=20``."""

    jobs: int = 100_000
    workers: int = 1
    fresh_rate: float = 20.0
    timeout: float = 1800.0

    @property
    def name(self) -> str:
        extra = f" w={self.workers}" if self.workers > 1 else ""
        return f"TM drain {self.jobs} due{extra} + fresh {self.fresh_rate:g}/s"


@dataclass(frozen=True)
class Options:
    """Everything one invocation was asked for (see ``_cli.build_parser``)."""

    database_url: str | None
    steps: int
    scenarios: list[Scenario]
    dbos: bool
    dbos_shape: LoadShape
    dbos_mode: str
    profile: bool
    profile_rate: int
    json_path: Path | None
    run_dir: Path | None
    tm_env: dict[str, str] = field(default_factory=dict)
    payload_size: int = 16
    db_prefix: str = "stepping_bench"
    smoke: bool = False
    keep: bool = False
    participants: str = "python"
    drains: list[DrainScenario] = field(default_factory=list)
    scales: list[int] = field(default_factory=list)  # rows of each scale run
