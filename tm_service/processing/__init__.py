"""Running jobs: the engine (sweeper, waiters, shutdown), processors and transport."""

from tm_service.clock import Clock, SystemClock
from tm_service.processing._context import ProcessingContext
from tm_service.processing._engine import Engine
from tm_service.processing._lease import Lease
from tm_service.processing._processor import JobProcessor
from tm_service.processing._transport import CallInfo, CallResult, GrpcTransport, Transport

__all__ = [
    "CallInfo",
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
