"""The lease as this replica sees it: until when, on its own monotonic clock, it surely holds.

The store's clock decides when a lease lapses; this replica only ever under-estimates
it, by counting from before the write that took or renewed it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Lease"]

# A job handed to ``Engine.run`` was leased by a write that finished a moment ago
# (its start time is not known there): count the lease from this much earlier.
_CLAIM_SKEW = 1.0


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease length (``STEPPING_LEASE_SECONDS``) and the margins kept around it."""

    seconds: float

    @property
    def slack(self) -> float:
        """Margin kept before a lapse: renew before the lease gets this close to its end."""
        return min(5.0, self.seconds / 4)

    def after_write(self, started: float, extra: float = 0.0) -> float:
        """Valid-until of a lease written for ``seconds + extra`` by a write begun then."""
        return started + extra + self.seconds

    def after_claim(self, now: float) -> float:
        """Valid-until of a lease taken by a write that just finished."""
        return now - _CLAIM_SKEW + self.seconds

    def outlasts(self, valid_until: float, now: float, needed: float) -> bool:
        """Does a lease valid until ``valid_until`` surely hold ``needed`` more seconds?"""
        return valid_until - now > needed + self.slack
