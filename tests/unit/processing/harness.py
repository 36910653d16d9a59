"""A TM core in memory: the real processor and engine on the in-memory store, a scripted
transport and a fake clock. No network, no database, no sleeping."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stepping.contract import QUERY_PREPARED_METHOD

from tests.fakes import FakeClock, FlakyStore, ScriptedTransport
from tm_service.config import Settings
from tm_service.domain import (
    ActiveJob,
    Endpoint,
    Mode,
    NewTransaction,
    RetryPolicy,
    StepSpec,
    Transaction,
    TxOptions,
    TxStatus,
)
from tm_service.processing import Engine, JobProcessor, ProcessingContext

TARGET = "bank:1"
QP = Endpoint("orders:1", QUERY_PREPARED_METHOD)


def method(i: int) -> str:
    return f"/bank.v1.Bank/Step{i}"


def undo(i: int) -> str:
    return f"/bank.v1.Bank/Undo{i}"


def policy(
    initial: float = 1.0, coefficient: float = 2.0, maximum: float = 60.0, attempts: int = 0
) -> RetryPolicy:
    return RetryPolicy(initial, coefficient, maximum, attempts)


def new_job(
    n_steps: int = 3,
    *,
    mode: Mode = Mode.MESSAGE,
    retry: RetryPolicy | None = None,
    timeout: float = 3.0,
    deadline: float | None = None,
    concurrent: bool = False,
    headers: dict[str, str] | None = None,
) -> NewTransaction:
    retry = retry or policy()
    specs = tuple(
        StepSpec(
            i,
            f"s{i}",
            Endpoint(TARGET, method(i)),
            Endpoint(TARGET, undo(i)) if mode is Mode.SAGA else None,
            b"payload-%d" % i,
            dict(headers or {}),
            retry,
            timeout,
        )
        for i in range(n_steps)
    )
    options = TxOptions(mode, timeout, 10.0, deadline, concurrent)
    return NewTransaction(uuid.uuid4().hex, specs, options, QP, "orders", b"fp")


@dataclass
class Core:
    """Everything the processor touches, in memory."""

    settings_overrides: dict[str, Any] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        base: dict[str, Any] = {
            "replica_id": "r1",
            "lease_seconds": 30.0,
            "inline_retry_max_seconds": 10.0,
        }
        base.update(self.settings_overrides)
        self.settings = Settings.load(env={}, overrides=base)
        self.store = FlakyStore(self.clock)
        self.transport = ScriptedTransport(self.clock)
        self.finals: list[str] = []
        self.ctx = ProcessingContext(
            store=self.store,
            transport=self.transport,
            settings=self.settings,
            clock=self.clock,
            on_final=self.finals.append,
        )
        self.processor = JobProcessor(self.ctx)

    async def submitted(self, new: NewTransaction) -> ActiveJob:
        made = await self.store.insert(
            new, status=TxStatus.SUBMITTED, owner="r1", lease=self.settings.lease_seconds
        )
        assert made is not None
        self.ctx.mark_claimed(made[0])
        return made[0]

    async def prepared(self, new: NewTransaction) -> None:
        made = await self.store.insert(new, status=TxStatus.PREPARED, owner=None, lease=0)
        assert made is not None

    async def run(self, new: NewTransaction) -> Transaction:
        """Submit ``new`` and run one processing pass; the job as stored afterwards."""
        job = await self.submitted(new)
        await self.processor.run(job)
        return await self.stored(new.gid)

    async def claim(self, owner: str = "r1") -> list[ActiveJob]:
        jobs = await self.store.claim_due(owner=owner, lease=self.settings.lease_seconds, limit=100)
        for job in jobs:
            self.ctx.mark_claimed(job)
        return jobs

    async def stored(self, gid: str) -> Transaction:
        got = await self.store.get(gid)
        assert got is not None
        return got.transaction

    def engine(self) -> Engine:
        return Engine(self.ctx)

    def methods_called(self) -> Sequence[tuple[str, str]]:
        return [(c.endpoint.method, c.op) for c in self.transport.calls]
