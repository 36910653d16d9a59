"""The Telemetry object: what the TM reports, and the one switch that turns it all off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Link, SpanKind, StatusCode, TracerProvider
from stepping import contract

from tm_service.domain import FINAL_STATUSES, ActiveJob, Mode, NewTransaction, Transaction, TxStatus
from tm_service.telemetry._attributes import GID, MODE, OP, OUTCOME, STATUS, extract_w3c
from tm_service.telemetry._metrics import Backlog, Instruments

__all__ = ["SCOPE", "VERSION", "Telemetry"]

SCOPE = "stepping.tm"
VERSION = contract.VERSION


def _mode(mode: Mode) -> str:
    return mode.name.lower()


class Telemetry:
    """Traces and metrics of one TM.

    Built from the ``OTEL_*`` environment by :func:`configure_telemetry`, or given
    providers directly (tests use in-memory exporters). ``Telemetry()`` is off: no
    spans, no instruments, and the TM's hot path skips it behind one attribute check
    (``enabled``, ``tracing``, ``metrics``).
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.tracing = tracer_provider is not None
        self.metrics = meter_provider is not None
        self.enabled = self.tracing or self.metrics
        self.tracer: trace.Tracer = (
            tracer_provider.get_tracer(SCOPE, VERSION)
            if tracer_provider is not None
            else trace.NoOpTracer()
        )
        self.backlog = Backlog()
        self.instruments = (
            Instruments(meter_provider.get_meter(SCOPE, VERSION), self.backlog)
            if meter_provider is not None
            else None
        )
        # Where the Prometheus scrape endpoint listens, when one was started.
        self.prometheus_address: tuple[str, int] | None = None
        self._shutdown = shutdown

    def shutdown(self) -> None:
        """Flush and stop the exporters this object started (blocking; once)."""
        shutdown, self._shutdown = self._shutdown, None
        if shutdown is not None:
            shutdown()

    # -- metrics ------------------------------------------------------------------
    def job_started(self, new: NewTransaction) -> None:
        if self.instruments is not None:
            self.instruments.jobs_started.add(1, {MODE: _mode(new.options.mode)})

    def transaction_finished(self, tx: Transaction) -> None:
        """A job ended outside a processing pass (the client aborted it)."""
        if self.instruments is not None and tx.finish_time is not None:
            seconds = (tx.finish_time - tx.create_time).total_seconds()
            self._finished(tx.status, tx.mode, seconds)

    def step_attempt(self, op: str, outcome: str, seconds: float) -> None:
        if self.instruments is not None:
            attributes = {OP: op, OUTCOME: outcome}
            self.instruments.step_attempts.add(1, attributes)
            self.instruments.step_duration.record(seconds, attributes)

    def _finished(self, status: TxStatus, mode: Mode, seconds: float | None) -> None:
        assert self.instruments is not None
        self.instruments.jobs_finished.add(1, {STATUS: status.name, MODE: _mode(mode)})
        if seconds is not None:
            self.instruments.job_duration.record(
                max(seconds, 0.0), {STATUS: status.name, MODE: _mode(mode)}
            )

    # -- a processing pass --------------------------------------------------------
    @contextmanager
    def job_pass(self, job: ActiveJob) -> Iterator[None]:
        """One processing pass of ``job``: a span in the job's trace, and the job's
        finished metrics when it ends in this pass.

        The span's parent is the trace context stored at Prepare/Submit, so a pass
        run by the sweeper after a restart, or on another replica, joins the
        client's trace. A pass started by a Submit links to that RPC's span.
        """
        if not self.tracing:
            try:
                yield
            finally:
                self._pass_ended(job)
            return
        parent = extract_w3c(job.trace_context.items())
        stored = trace.get_current_span(parent).get_span_context()
        current = trace.get_current_span().get_span_context()
        linked = current.is_valid and current.span_id != stored.span_id
        with self.tracer.start_as_current_span(
            "stepping job",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={GID: job.gid, MODE: _mode(job.options.mode)},
            links=[Link(current)] if linked else None,
        ) as span:
            try:
                yield
            finally:
                span.set_attribute(STATUS, job.status.name)
                if job.status is TxStatus.FAILED:
                    span.set_status(StatusCode.ERROR, job.error or "failed")
                self._pass_ended(job)

    def _pass_ended(self, job: ActiveJob) -> None:
        if self.instruments is None or job.status not in FINAL_STATUSES:
            return
        created = job.create_time
        ended = job.finish_time or datetime.now(UTC)  # the database's, when the store has it
        seconds = None if created is None else (ended - created).total_seconds()
        self._finished(job.status, job.options.mode, seconds)
