"""The context of the step call being served, read by step code through :func:`info`."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["StepInfo", "info"]

Op = Literal["action", "compensate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepInfo:
    """What the TM said about the step call being served."""

    gid: str
    """The job's global transaction id."""
    step_index: int
    """Position of the step in the job, from 0."""
    step_name: str
    """The step's name in the job."""
    op: Op
    """``"action"`` or ``"compensate"``."""
    attempt: int = 1
    """1 for the first call of this op, then 2, 3, ..."""
    deadline: datetime | None = None
    """When the TM stops waiting for this call (UTC), if it set a deadline."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The call's metadata other than the ``stepping-*`` keys (step headers, trace context)."""

    @property
    def branch_id(self) -> str:
        """The barrier branch of this step: ``"01"`` for index 0, ``"02"``, ... (DTM's)."""
        return f"{self.step_index + 1:02d}"

    @property
    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the job, if the TM sent one."""
        return self.headers.get("traceparent")

    def time_remaining(self) -> float | None:
        """Seconds left before :attr:`deadline`, or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - datetime.now(UTC)).total_seconds())


@dataclass(slots=True)
class _CallState:
    info: StepInfo
    barriers_used: int = 0

    def next_barrier_id(self) -> str:
        # DTM numbers the barriers of one call so a step may guard several writes.
        self.barriers_used += 1
        return f"{self.barriers_used:02d}"


_current: contextvars.ContextVar[_CallState] = contextvars.ContextVar("stepping_step_call")


def info() -> StepInfo:
    """The :class:`StepInfo` of the step call being served.

    Raises ``RuntimeError`` outside a step (use ``participant_sdk.testing`` in tests).
    """
    return current_call().info


def current_call() -> _CallState:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("not in a step call: info() and barrier() work inside a step") from None


@contextmanager
def step_context(step_info: StepInfo) -> Iterator[_CallState]:
    """Makes ``step_info`` the current step call for the duration of the block."""
    state = _CallState(step_info)
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)
