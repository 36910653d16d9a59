"""Run step functions in tests, without a server or a TM.

``info()`` and ``barrier()`` see the :class:`~participant_sdk.StepInfo` you choose::

    env = StepEnvironment(gid="g1", step_index=0, op="compensate")
    result = await env.run(undo_debit, Transfer(account="alice", amount=10))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from participant_sdk._info import Op, StepInfo, step_context

__all__ = ["StepEnvironment", "make_info", "run_step"]

P = ParamSpec("P")
T = TypeVar("T")


def make_info(
    *,
    gid: str = "test-gid",
    step_index: int = 0,
    step_name: str = "test-step",
    op: Op = "action",
    attempt: int = 1,
    timeout: timedelta | None = timedelta(seconds=3),
    headers: Mapping[str, str] | None = None,
) -> StepInfo:
    """A StepInfo with test defaults; ``timeout`` sets the deadline from now."""
    return StepInfo(
        gid=gid,
        step_index=step_index,
        step_name=step_name,
        op=op,
        attempt=attempt,
        deadline=None if timeout is None else datetime.now(UTC) + timeout,
        headers=dict(headers or {}),
    )


class StepEnvironment:
    """Runs step functions as if the TM called them with :attr:`info`.

    Build it from a :class:`StepInfo` or from :func:`make_info`'s keywords.
    """

    def __init__(self, info: StepInfo | None = None, **info_fields: Any) -> None:
        self.info = replace(info, **info_fields) if info else make_info(**info_fields)

    async def run(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Calls ``fn`` with ``info()`` (and a fresh barrier sequence) set to :attr:`info`."""
        with step_context(self.info):
            return await fn(*args, **kwargs)

    def run_sync(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`run` for a plain ``def`` step (called directly, in this thread)."""
        with step_context(self.info):
            return fn(*args, **kwargs)


async def run_step(fn: Callable[..., Awaitable[T]], *args: Any, info: StepInfo | None = None) -> T:
    """Shorthand for ``StepEnvironment(info).run(fn, *args)``."""
    with step_context(info or make_info()):
        return await fn(*args)
