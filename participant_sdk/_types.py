"""Value types shared by the client and the server: endpoints, retry policies, durations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf import duration_pb2
from stepping import contract
from stepping.tm.v1 import tm_pb2

__all__ = ["QUERY_PREPARED_METHOD", "Duration", "Endpoint", "RetryPolicy"]

#: The full gRPC method of the standard QueryPrepared handler.
QUERY_PREPARED_METHOD = contract.QUERY_PREPARED_METHOD

#: A duration: a ``timedelta`` or a number of seconds.
Duration = timedelta | float


def to_seconds(value: Duration) -> float:
    """Seconds of a duration given as ``timedelta`` or a number."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def to_duration_pb(value: Duration) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value if isinstance(value, timedelta) else timedelta(seconds=value))
    return out


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A unary gRPC method the TM calls: ``target`` ("host:port") and full ``method``.

    ``method`` is ``"/pkg.Service/Method"``. It may be left empty only for a
    QueryPrepared endpoint: the TM then calls the standard
    ``/stepping.participant.v1.ParticipantService/QueryPrepared``.
    """

    target: str
    method: str = ""

    @classmethod
    def for_step(cls, target: str, service: str, step: str | Callable[..., Any]) -> Endpoint:
        """The endpoint of a step served by a :class:`ParticipantServer` at ``target``.

        ``step`` is the step's name or the ``@step``-decorated function itself.
        """
        from participant_sdk._step import step_definition

        name = step if isinstance(step, str) else step_definition(step).name
        return cls(target, f"/{service}/{name}")

    @classmethod
    def query_prepared(cls, target: str) -> Endpoint:
        """The standard QueryPrepared endpoint of a :class:`ParticipantServer` at ``target``."""
        return cls(target, QUERY_PREPARED_METHOD)

    def to_proto(self) -> tm_pb2.Endpoint:
        return tm_pb2.Endpoint(target=self.target, method=self.method)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How the TM retries a step that failed with a retryable status.

    Unset fields take the TM's defaults (1 s, x2.0, 60 s, unlimited attempts).
    """

    initial_interval: Duration | None = None
    """Delay before the second attempt; also the delay after ``RetryLater``."""
    backoff_coefficient: float | None = None
    """Each further delay is the previous one times this (>= 1.0)."""
    maximum_interval: Duration | None = None
    """Upper bound of a delay."""
    maximum_attempts: int | None = None
    """Attempts before the step fails for good; 0 or None = unlimited."""

    def to_proto(self) -> tm_pb2.RetryPolicy:
        out = tm_pb2.RetryPolicy()
        if self.initial_interval is not None:
            out.initial_interval.CopyFrom(to_duration_pb(self.initial_interval))
        if self.backoff_coefficient is not None:
            out.backoff_coefficient = self.backoff_coefficient
        if self.maximum_interval is not None:
            out.maximum_interval.CopyFrom(to_duration_pb(self.maximum_interval))
        if self.maximum_attempts is not None:
            out.maximum_attempts = self.maximum_attempts
        return out
