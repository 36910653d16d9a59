"""The client side: connect to the TM, build jobs, start them, read their state."""

from __future__ import annotations

from participant_sdk._client import TmClient
from participant_sdk._job import Job
from participant_sdk._state import Attempt, JobState, JobStatus, Mode, StepState, StepStatus
from participant_sdk._tls_config import TLSConfig

__all__ = [
    "Attempt",
    "Job",
    "JobState",
    "JobStatus",
    "Mode",
    "StepState",
    "StepStatus",
    "TLSConfig",
    "TmClient",
]
