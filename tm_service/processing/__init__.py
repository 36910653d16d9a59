"""Running jobs: the engine (sweeper, waiters, shutdown), processors and transport."""

from tm_service.clock import Clock, SystemClock
from tm_service.processing._context import ProcessingContext
from tm_service.processing._engine import Engine
from tm_service.processing._lease import Lease
from tm_service.processing._processor import QUERY_PREPARED_METHOD, JobProcessor
from tm_service.processing._transport import CallResult, GrpcTransport, Transport

__all__ = [
    "QUERY_PREPARED_METHOD",
    "CallResult",
    "Clock",
    "Engine",
    "GrpcTransport",
    "JobProcessor",
    "Lease",
    "ProcessingContext",
    "SystemClock",
    "Transport",
]
