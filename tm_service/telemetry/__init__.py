"""OpenTelemetry for the TM: spans of RPCs, processing passes and step attempts; metrics.

``configure_telemetry(settings, env)`` builds it from the ``OTEL_*`` variables;
``Telemetry()`` is off; tests give ``Telemetry(tracer_provider=..., meter_provider=...)``.
"""

from tm_service.telemetry._attributes import current_w3c
from tm_service.telemetry._metrics import METRICS, watch_backlog
from tm_service.telemetry._server import ServerSpans
from tm_service.telemetry._setup import TelemetryConfigError, configure_telemetry, prometheus_port
from tm_service.telemetry._telemetry import Telemetry
from tm_service.telemetry._transport import InstrumentedTransport

__all__ = [
    "METRICS",
    "InstrumentedTransport",
    "ServerSpans",
    "Telemetry",
    "TelemetryConfigError",
    "configure_telemetry",
    "current_w3c",
    "prometheus_port",
    "watch_backlog",
]
