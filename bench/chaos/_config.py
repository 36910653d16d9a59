"""What one chaos run does: its load, its faults and their counts, and its limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos._faults import FaultPlan

__all__ = ["PRESETS", "ChaosConfig"]


@dataclass(frozen=True)
class ChaosConfig:
    """One run. The load offers ``jobs`` at ``rate`` per second; the chaos events are
    spread evenly over that window; then the run drains and checks its invariants."""

    jobs: int = 150
    rate: float = 5.0
    max_in_flight: int = 32
    # The mix: 2-phase message jobs (an order committed with its job) among saga transfers.
    message_share: float = 0.4
    rollback_share: float = 0.2
    """Of the message jobs: the local transaction fails at COMMIT after Prepare."""
    abandon_share: float = 0.15
    """Of the message jobs: the client "dies" before Submit (or Abort): the back-check decides."""
    no_funds_share: float = 0.05
    """Of the transfers: the debit fails (a business failure): the job FAILS, nothing moves."""
    no_account_share: float = 0.05
    """Of the transfers: the credit fails after the debit: the saga compensates the debit."""
    # The system under test.
    replicas: int = 2
    lease_seconds: float = 5.0
    """Longer than a step call may take (3 s): a shorter lease lapses during slow calls
    under load and the replicas take each other's jobs, over and over."""
    accounts_per_bank: int = 8
    initial_balance: int = 10_000
    barrier: bool = True
    faults: FaultPlan = field(
        default_factory=lambda: FaultPlan(
            before_commit=0.05, after_commit=0.05, crash_after_commit=0.0
        )
    )
    # The chaos: how many events of each kind, and how long each lasts.
    tm_kills: int = 2
    participant_kills: int = 1
    pg_restarts: int = 1
    proxy_cuts: int = 1
    tm_down_seconds: float = 0.5
    participant_down_seconds: float = 0.5
    pg_down_seconds: float = 2.0
    cut_seconds: float = 3.0
    # The clients: each call's deadline, Submit's wait, attempts on UNAVAILABLE.
    client_timeout: float = 5.0
    wait_timeout: float = 5.0
    client_attempts: int = 10
    # Limits: the drain after the load, and the whole run.
    drain_seconds: float = 60.0
    max_seconds: float = 600.0
    pg_fsync: bool = False
    seed: int = 11
    run_dir: Path | None = None
    keep: bool = False

    @property
    def window(self) -> float:
        """Seconds over which the load is offered (and the chaos spread)."""
        return self.jobs / self.rate


PRESETS: dict[str, ChaosConfig] = {
    # CI: ~30 s of load, every kind of fault at least once.
    "short": ChaosConfig(),
    # The README's long run: >= 10,000 jobs and >= 100 TM SIGKILLs.
    "long": ChaosConfig(
        jobs=10_000,
        replicas=3,  # a TM is SIGKILLed every ~4 s; restarting one takes ~3 s here
        rate=20.0,
        max_in_flight=64,
        tm_kills=110,
        participant_kills=20,
        pg_restarts=5,
        proxy_cuts=10,
        faults=FaultPlan(before_commit=0.05, after_commit=0.05, crash_after_commit=0.002),
        drain_seconds=600.0,
        max_seconds=3600.0,
        pg_fsync=True,
    ),
    # The proof that the suite can fail: no barrier, many effects delivered twice.
    "no-barrier": ChaosConfig(
        jobs=60,
        rate=10.0,
        barrier=False,
        faults=FaultPlan(after_commit=0.3),
        tm_kills=0,
        participant_kills=0,
        pg_restarts=0,
        proxy_cuts=0,
        drain_seconds=30.0,
        max_seconds=180.0,
    ),
}
