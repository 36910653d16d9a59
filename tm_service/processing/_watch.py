"""The lease watch: a job that waits here learns within a poll that it was cancelled.

A processor finds out that its job was cancelled (or taken over) at its next fenced
write. That is soon for a call of a few milliseconds, but a job can also wait here: for
an inline retry (up to ``inline_retry_max_seconds``) or on a call that outlasts the
lease. Those waits register here, and one query per poll (``lease_changes``, for every
job that has waited longer than a poll) tells them when their job's lease token
changed, on whichever replica the Cancel was answered. A Cancel answered by this
process tells them at once.

What a processor does when told (see ``run_attempts`` and ``while_leased``): a retry
wait stops and calls nothing more; a call in flight is left to finish within the lease
this replica still holds, and its result is recorded; a take-over stops both at once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tm_service.domain import ActiveJob
from tm_service.errors import StoreUnavailable
from tm_service.store import JobStore

__all__ = ["LeaseWatch", "Verdict", "Watched"]

_log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    CANCELLED = "cancelled"  # a Cancel moved the job while it was held here
    TAKEN = "taken"  # another replica holds it now (or it is gone)
    STOPPING = "stopping"  # this process is shutting down (retry waits only)


@dataclass(eq=False, slots=True)
class Watched:
    """One wait of one job: set ``event`` to end it; ``verdict`` says why."""

    job: ActiveJob
    since: float
    call: bool  # a call in flight (else a retry wait)
    event: asyncio.Event = field(default_factory=asyncio.Event)
    verdict: Verdict | None = None

    def tell(self, verdict: Verdict) -> None:
        if self.verdict is None:
            self.verdict = verdict
        self.event.set()


class LeaseWatch:
    """The waits of this process's jobs, checked against the store once per poll."""

    def __init__(self) -> None:
        self._waits: dict[str, list[Watched]] = {}

    @contextmanager
    def watching(self, job: ActiveJob, now: float, *, call: bool) -> Iterator[Watched]:
        """Register a wait for its duration (a job may have several: concurrent steps)."""
        watched = Watched(job, now, call)
        waits = self._waits.setdefault(job.gid, [])
        waits.append(watched)
        try:
            yield watched
        finally:
            waits.remove(watched)
            if not waits:
                del self._waits[job.gid]

    def tell(self, gid: str, verdict: Verdict) -> None:
        """End the job's waits (a Cancel answered here)."""
        for watched in self._waits.get(gid, ()):
            watched.tell(verdict)

    def stopping(self) -> None:
        """Shutdown: end every retry wait (calls in flight get the grace period)."""
        for waits in self._waits.values():
            for watched in waits:
                if not watched.call:
                    watched.tell(Verdict.STOPPING)

    async def check(self, store: JobStore, now: float, older_than: float) -> int:
        """Ask the store about the waits older than ``older_than`` seconds; how many
        were told."""
        due = [
            w
            for waits in self._waits.values()
            for w in waits
            if w.verdict is None and now - w.since >= older_than
        ]
        if not due:
            return 0
        held = {w.job.gid: w.job.lease_token for w in due}
        try:
            changed = await store.lease_changes(list(held.items()))
        except StoreUnavailable as err:
            _log.debug("lease watch skipped: %s", err)
            return 0
        told = 0
        for w in due:
            # The token is compared as of the query: a write since then (the job went
            # on) changed it again, so only a still-current token is believed.
            if w.job.gid in changed and held[w.job.gid] == w.job.lease_token:
                w.tell(Verdict.CANCELLED if changed[w.job.gid] else Verdict.TAKEN)
                told += 1
        return told
