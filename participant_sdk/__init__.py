"""Stepping participant SDK: write steps as Python functions, start jobs from Python.

Steps (participant side)::

    @step(name="Debit")
    async def debit(req: Transfer) -> None:
        async with engine.begin() as conn:
            if await barrier(conn):  # exactly-once, however often the TM delivers
                await conn.execute(...)

    async with ParticipantServer(steps=[debit], service="bank.v1.Bank", port=50061):
        ...

Jobs (client side)::

    async with TmClient.connect() as tm:  # $STEPPING_TM_ADDRESS, default 127.0.0.1:36790
        job = tm.job()
        job.add_step(debit, Transfer(...), target=bank_server)  # typed by debit's argument
        await job.start()
        state = await job.wait()  # raises JobFailed / JobAborted

More in :mod:`participant_sdk.client`, :mod:`participant_sdk.errors`,
:mod:`participant_sdk.migrations` and :mod:`participant_sdk.testing`.
"""

from __future__ import annotations

from participant_sdk._barrier import barrier
from participant_sdk._client import TmClient
from participant_sdk._guard import ServerTls
from participant_sdk._info import StepInfo, info
from participant_sdk._job import Job
from participant_sdk._server import ParticipantServer
from participant_sdk._step import compensation, step
from participant_sdk._sync_client import SyncJob, SyncTmClient
from participant_sdk._tls_config import TLSConfig
from participant_sdk._types import Endpoint, RetryPolicy
from participant_sdk.errors import JobAborted, JobFailed, RetryLater, StepFailed

__all__ = [
    "Endpoint",
    "Job",
    "JobAborted",
    "JobFailed",
    "ParticipantServer",
    "RetryLater",
    "RetryPolicy",
    "ServerTls",
    "StepFailed",
    "StepInfo",
    "SyncJob",
    "SyncTmClient",
    "TLSConfig",
    "TmClient",
    "barrier",
    "compensation",
    "info",
    "step",
]
