"""Which step calls a bank fails on purpose, and how.

The decision is a pure function of the seed and the call (gid, step, op, attempt), so a
run can be repeated and every bank process (also after a restart) decides alike. Only the
first ``max_attempt`` attempts of a call are faulted: each job gets through in the end.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

__all__ = ["Fault", "FaultPlan"]


class Fault(enum.Enum):
    """What a bank does with one step call."""

    NONE = "none"
    BEFORE_COMMIT = "before_commit"
    """Answer UNAVAILABLE before touching the database: nothing happened."""
    AFTER_COMMIT = "after_commit"
    """Commit the effect, then answer UNAVAILABLE: the TM retries an effect that happened."""
    CRASH_AFTER_COMMIT = "crash_after_commit"
    """Commit the effect, then die (``os._exit``) before answering."""


@dataclass(frozen=True)
class FaultPlan:
    """The rates of each fault, per step call attempt (0 ≤ rate, sum ≤ 1)."""

    before_commit: float = 0.0
    after_commit: float = 0.0
    crash_after_commit: float = 0.0
    max_attempt: int = 2
    seed: int = 0

    def decide(self, gid: str, step_index: int, op: str, attempt: int) -> Fault:
        if attempt > self.max_attempt:
            return Fault.NONE
        key = f"{self.seed}:{gid}:{step_index}:{op}:{attempt}".encode()
        draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
        for fault, rate in (
            (Fault.CRASH_AFTER_COMMIT, self.crash_after_commit),
            (Fault.AFTER_COMMIT, self.after_commit),
            (Fault.BEFORE_COMMIT, self.before_commit),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return Fault.NONE

    def to_args(self) -> list[str]:
        """The command-line flags of ``python -m bench.chaos._bank`` for this plan."""
        return [
            f"--before-commit={self.before_commit}",
            f"--after-commit={self.after_commit}",
            f"--crash-after-commit={self.crash_after_commit}",
            f"--fault-max-attempt={self.max_attempt}",
            f"--fault-seed={self.seed}",
        ]
