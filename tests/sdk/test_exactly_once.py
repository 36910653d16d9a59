"""Bank transfers across two participants stay exact when every step is delivered
three times, two of them at once (see _redeliver.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import bank as bank_example
import pytest_asyncio

from participant_sdk import Endpoint, RetryPolicy, TmClient
from participant_sdk.client import JobStatus, Mode, StepStatus
from tests.sdk._redeliver import RedeliveringProxy
from tests.sdk.conftest import Banks

FAST = RetryPolicy(initial_interval=0.1, backoff_coefficient=1.0, maximum_interval=0.2)
Transfer = bank_example.Transfer


@pytest_asyncio.fixture
async def proxies(banks: Banks) -> AsyncIterator[tuple[RedeliveringProxy, RedeliveringProxy]]:
    a = await RedeliveringProxy(banks.a.target).start()
    b = await RedeliveringProxy(banks.b.target).start()
    yield a, b
    await a.stop()
    await b.stop()


def _endpoint(proxy: RedeliveringProxy, step: str) -> Endpoint:
    return Endpoint.for_step(proxy.target, bank_example.SERVICE, step)


async def test_transfers_move_money_once(
    tm_client: TmClient, banks: Banks, proxies: tuple[RedeliveringProxy, RedeliveringProxy]
) -> None:
    a, b = proxies

    async def transfer(amount: int) -> JobStatus:
        job = tm_client.job(retry_policy=FAST)
        job.add_step(_endpoint(a, "Debit"), Transfer("alice", amount))
        job.add_step(_endpoint(b, "Credit"), Transfer("bob", amount))
        return (await job.start(wait=True, wait_timeout=20)).status

    statuses = await asyncio.gather(transfer(30), transfer(20), transfer(5))
    assert list(statuses) == [JobStatus.SUCCEEDED] * 3  # typeshed: gather of 3 is a tuple
    assert await banks.balances() == (45, 55)
    # Each step of each job reached the bank three times.
    assert a.forwarded[("0", "action")] == 9
    assert b.forwarded[("1", "action")] == 9


async def test_saga_compensation_is_exact_too(
    tm_client: TmClient, banks: Banks, proxies: tuple[RedeliveringProxy, RedeliveringProxy]
) -> None:
    a, b = proxies
    job = tm_client.job(mode=Mode.SAGA, retry_policy=FAST)
    job.add_step(_endpoint(a, "Debit"), Transfer("alice", 40), compensation=_endpoint(a, "Debit"))
    job.add_step(_endpoint(b, "Credit"), Transfer("carol", 40), compensation=_endpoint(b, "Credit"))
    state = await job.start(wait=True, wait_timeout=20)
    assert state.status is JobStatus.FAILED
    assert "no account 'carol'" in state.error
    assert [s.status for s in state.steps] == [StepStatus.COMPENSATED, StepStatus.COMPENSATED]
    # Debit ran and was undone once; Credit failed, so its compensation did nothing.
    assert await banks.balances() == (100, 0)
    assert a.forwarded[("0", "compensate")] == 3
    assert b.forwarded[("1", "compensate")] == 3
