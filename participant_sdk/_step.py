"""``@step`` and ``@compensation``: decorators that only attach metadata.

A decorated function stays the same function, directly callable. Registration is
explicit: pass the functions to ``ParticipantServer(steps=[...])``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from participant_sdk._codec import Codec, codec_for

__all__ = ["StepDefinition", "compensation", "step", "step_definition"]

F = TypeVar("F", bound=Callable[..., Any])

_ATTR = "__stepping_definition__"


@dataclass(frozen=True, slots=True)
class _Meta:
    kind: Literal["step", "compensation"]
    name: str


@dataclass(frozen=True, slots=True)
class StepDefinition:
    """A step or compensation function with its payload codecs, ready to serve."""

    kind: Literal["step", "compensation"]
    name: str
    """The step's name (for a compensation: the name of the step it undoes)."""
    fn: Callable[..., Any]
    arg: Codec | None
    """How the payload decodes; None when the function takes no argument."""
    result: Codec
    is_async: bool = True
    """An ``async def`` (awaited on the loop); else a plain ``def`` run in the server's
    ``step_executor``."""


@overload
def step(fn: F, /) -> F: ...
@overload
def step(*, name: str | None = None) -> Callable[[F], F]: ...
def step(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Marks a function as a step served at ``/<service>/<name>``.

    An ``async def`` runs on the server's event loop; a plain ``def`` (blocking code,
    sync SQLAlchemy) runs in the server's ``step_executor`` (a thread pool by default),
    with :func:`info` and :func:`barrier` working the same.

    ``name`` defaults to the function's name. The function takes the decoded payload
    (typed by its annotation: a protobuf message, a dataclass, a pydantic model or
    ``bytes``), or nothing; its return value, encoded the same way, becomes the
    step's result. Raise :class:`StepFailed` for a business failure,
    :class:`RetryLater` when not ready yet; other exceptions are retried.
    """

    def decorate(f: F) -> F:
        _check_async(f)
        setattr(f, _ATTR, _Meta("step", name or f.__name__))
        return f

    return decorate(fn) if fn is not None else decorate


def compensation(*, for_step: str | Callable[..., Any]) -> Callable[[F], F]:
    """Marks a function (``async def`` or ``def``) as the compensation of a step (saga mode).

    It is served at the step's own method and called when the TM sends
    ``stepping-op: compensate``; it gets the step's payload. Register it next to the
    step in ``ParticipantServer(steps=[...])``.
    """
    target = for_step if isinstance(for_step, str) else step_definition(for_step).name

    def decorate(f: F) -> F:
        _check_async(f)
        setattr(f, _ATTR, _Meta("compensation", target))
        return f

    return decorate


def step_definition(fn: Callable[..., Any]) -> StepDefinition:
    """Reads the metadata of a decorated function (or bound method) and its codecs."""
    meta = getattr(fn, _ATTR, None)
    if not isinstance(meta, _Meta):
        raise TypeError(f"{fn!r} is not decorated with @step or @compensation")
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(f"cannot resolve the annotations of {fn!r}: {exc}") from exc
    params = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) > 1:
        raise TypeError(f"{fn!r} must take at most one argument (the payload)")
    arg = codec_for(hints.get(params[0].name, params[0].empty)) if params else None
    returns = hints.get("return", signature.empty)
    result = codec_for(bytes if returns is signature.empty else returns)
    return StepDefinition(
        meta.kind, meta.name, fn, arg, result, is_async=inspect.iscoroutinefunction(fn)
    )


def _check_async(fn: Callable[..., Any]) -> None:
    if not callable(fn):
        raise TypeError(f"{fn!r} is not a function")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise TypeError(f"{fn!r} must be an async def or a plain def, not a generator")
