"""Telemetry from the standard ``OTEL_*`` environment (and ``Settings.metrics_port``).

Off unless configured: with no ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``,
no OTLP endpoint and no metrics port, no SDK provider is built and the TM runs with
``Telemetry()`` (no spans, no instruments). ``OTEL_SDK_DISABLED=true`` wins over all.

Exporters: traces ``otlp`` (gRPC), ``console``, ``none``; metrics ``otlp``,
``prometheus`` (an HTTP scrape endpoint), ``console``, ``none``; comma-separated.
The exporters and the SDK read their own variables too: ``OTEL_EXPORTER_OTLP_*``
(endpoint, headers, timeout, insecure), ``OTEL_TRACES_SAMPLER`` and
``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from tm_service.config import Settings, SettingsError
from tm_service.telemetry._telemetry import VERSION, Telemetry

__all__ = [
    "DEFAULT_PROMETHEUS_PORT",
    "TelemetryConfigError",
    "configure_telemetry",
    "prometheus_port",
]

_log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "stepping-tm"
DEFAULT_PROMETHEUS_PORT = 9464  # OpenTelemetry's default for OTEL_EXPORTER_PROMETHEUS_PORT
_TRACE_EXPORTERS = frozenset({"otlp", "console", "none"})
_METRIC_EXPORTERS = frozenset({"otlp", "prometheus", "console", "none"})


class TelemetryConfigError(SettingsError):
    """An ``OTEL_*`` variable asks for something the TM cannot do."""


def _names(env: Mapping[str, str], variable: str, allowed: frozenset[str]) -> set[str] | None:
    raw = env.get(variable, "").strip()
    if not raw:
        return None
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    unknown = names - allowed
    if unknown:
        raise TelemetryConfigError(
            f"{variable}: unsupported {sorted(unknown)}; use {', '.join(sorted(allowed))}"
        )
    return names - {"none"}


def _check_grpc(env: Mapping[str, str], signal: str) -> None:
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(variable, "").strip()
        if protocol:
            if protocol != "grpc":
                raise TelemetryConfigError(
                    f"{variable}={protocol}: the TM exports OTLP over gRPC only (use grpc)"
                )
            return


def _resource(settings: Settings, env: Mapping[str, str]) -> Resource:
    """OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES first; our defaults fill the gaps."""
    given = {
        pair.split("=", 1)[0].strip()
        for pair in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
        if "=" in pair
    }
    if env.get("OTEL_SERVICE_NAME"):
        given.add("service.name")
    defaults = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": VERSION,
        # The replica id also names the lease owner: one name for logs, leases, traces.
        "service.instance.id": settings.replica_id,
    }
    return Resource.create().merge(Resource({k: v for k, v in defaults.items() if k not in given}))


def prometheus_port(settings: Settings, env: Mapping[str, str]) -> int:
    """The scrape port: ``metrics_port``, else ``OTEL_EXPORTER_PROMETHEUS_PORT``, else 9464."""
    if settings.metrics_port:
        return settings.metrics_port
    raw = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "")
    return int(raw) if raw.isdigit() else DEFAULT_PROMETHEUS_PORT


def configure_telemetry(settings: Settings, env: Mapping[str, str]) -> Telemetry:
    """Telemetry as ``env`` (the ``OTEL_*`` variables) and ``settings`` configure it."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry()
    otlp_any = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    traces = _names(env, "OTEL_TRACES_EXPORTER", _TRACE_EXPORTERS)
    if traces is None:
        traces = {"otlp"} if otlp_any or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else set()
    metrics = _names(env, "OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS)
    if metrics is None:
        metrics = {"otlp"} if otlp_any or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") else set()
    if settings.metrics_port:
        metrics.add("prometheus")
    if not traces and not metrics:
        return Telemetry()
    if "otlp" in traces:
        _check_grpc(env, "TRACES")
    if "otlp" in metrics:
        _check_grpc(env, "METRICS")

    resource = _resource(settings, env)
    stops: list[Callable[[], object]] = []
    tracer_provider = None
    if traces:
        # The sampler comes from OTEL_TRACES_SAMPLER (default parentbased_always_on).
        tracer_provider = TracerProvider(resource=resource)
        for name in sorted(traces):
            tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(name)))
        stops.append(tracer_provider.shutdown)
    meter_provider = None
    prometheus_address: tuple[str, int] | None = None
    if metrics:
        readers: list[MetricReader] = []
        for name in sorted(metrics):
            if name == "prometheus":
                reader, prometheus_address, stop = _prometheus(
                    env.get("OTEL_EXPORTER_PROMETHEUS_HOST") or "0.0.0.0",
                    prometheus_port(settings, env),
                )
                readers.append(reader)
                stops.append(stop)
            else:
                readers.append(_periodic_reader(name))
        meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        stops.insert(0, meter_provider.shutdown)

    def shutdown() -> None:
        for stop in stops:
            try:
                stop()
            except Exception:
                _log.exception("telemetry shutdown failed")

    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider, shutdown=shutdown
    )
    telemetry.prometheus_address = prometheus_address
    _log.info(
        "telemetry on: traces %s, metrics %s",
        ",".join(sorted(traces)) or "off",
        ",".join(sorted(metrics)) or "off",
    )
    return telemetry


def _span_exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _periodic_reader(name: str) -> MetricReader:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )

    exporter: MetricExporter
    if name == "console":
        exporter = ConsoleMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    return PeriodicExportingMetricReader(exporter)


def _prometheus(host: str, port: int) -> tuple[MetricReader, tuple[str, int], Callable[[], object]]:
    """A Prometheus reader on its own registry, served over HTTP at ``host:port``."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise TelemetryConfigError(f"cannot serve metrics on {host}:{port}: {err}") from err

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return reader, (host, server.server_port), stop
