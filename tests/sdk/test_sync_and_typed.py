"""The same jobs on async and sync (plain def, sync barrier) participants, through
redelivering proxies: exactly-once transfers and saga compensation; typed add_step,
job.wait() raising JobFailed, JSON dict payloads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bank as bank_example
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk import JobFailed, ParticipantServer, RetryPolicy, TmClient, info, step
from participant_sdk.client import JobStatus, Mode, StepStatus
from tests.sdk._redeliver import RedeliveringProxy
from tests.sdk._sync_bank import SyncBank, sync_url
from tests.sdk.conftest import MakeEngine, balance

FAST = RetryPolicy(initial_interval=0.1, backoff_coefficient=1.0, maximum_interval=0.2)
Transfer = bank_example.Transfer
SERVICE = bank_example.SERVICE


class Proxied:
    """A bank server seen through a redelivering proxy: what add_step(target=) takes."""

    def __init__(self, proxy: RedeliveringProxy) -> None:
        self.proxy = proxy
        self.service = SERVICE

    @property
    def target(self) -> str:
        return self.proxy.target


@pytest_asyncio.fixture(params=["async", "sync"])
async def two_banks(
    request: pytest.FixtureRequest, make_engine: MakeEngine
) -> AsyncIterator[tuple[Proxied, Proxied, AsyncEngine, AsyncEngine]]:
    db_a, db_b = await make_engine(), await make_engine()
    await bank_example.create_schema(db_a, {"alice": 100})
    await bank_example.create_schema(db_b, {"bob": 0})
    sync_engines: list[sa.Engine] = []

    def steps(db: AsyncEngine) -> list[Any]:
        if request.param == "async":
            return list(bank_example.Bank(db).steps())
        engine = sa.create_engine(sync_url(db.url.render_as_string(hide_password=False)))
        sync_engines.append(engine)
        return SyncBank(engine).steps()

    executor = ThreadPoolExecutor(max_workers=8)
    async with (
        ParticipantServer(
            steps=steps(db_a), service=SERVICE, host="127.0.0.1", step_executor=executor
        ) as a,
        ParticipantServer(steps=steps(db_b), service=SERVICE, host="127.0.0.1") as b,
    ):
        pa = await RedeliveringProxy(a.target).start()
        pb = await RedeliveringProxy(b.target).start()
        yield Proxied(pa), Proxied(pb), db_a, db_b
        await pa.stop()
        await pb.stop()
    executor.shutdown()
    for engine in sync_engines:
        engine.dispose()


async def test_transfers_move_money_once(tm_client: TmClient, two_banks: Any) -> None:
    a, b, db_a, db_b = two_banks
    debit, credit = bank_example.Bank.debit, bank_example.Bank.credit

    async def transfer(amount: int) -> JobStatus:
        job = tm_client.job(retry_policy=FAST)
        # Typed form: the step functions themselves (unbound: the payload is checked
        # against Transfer; the server may be either implementation of the steps).
        job.add_step(_bound(debit), Transfer("alice", amount), target=a)
        job.add_step(_bound(credit), Transfer("bob", amount), target=b)
        await job.start()
        return (await job.wait(timeout=30)).status

    statuses = await asyncio.gather(transfer(30), transfer(20), transfer(5))
    assert list(statuses) == [JobStatus.SUCCEEDED] * 3
    assert (await balance(db_a, "alice"), await balance(db_b, "bob")) == (45, 55)
    assert a.proxy.forwarded[("0", "action")] == 9
    assert b.proxy.forwarded[("1", "action")] == 9


async def test_saga_compensation_is_exact_and_wait_raises(
    tm_client: TmClient, two_banks: Any
) -> None:
    a, b, db_a, db_b = two_banks
    job = tm_client.job(mode=Mode.SAGA, retry_policy=FAST, tags={"suite": "sdk"})
    job.add_step(_bound(bank_example.Bank.debit), Transfer("alice", 40), target=a, compensate=True)
    job.add_step(_bound(bank_example.Bank.credit), Transfer("carol", 40), target=b, compensate=True)
    await job.start()
    with pytest.raises(JobFailed) as failed:
        await job.wait(timeout=30)
    assert failed.value.step_index == 1 and failed.value.step_name == "Credit"
    assert "no account 'carol'" in failed.value.error  # the step's last_error: its compensation's
    state = failed.value.state
    assert state.status is JobStatus.FAILED
    assert [s.status for s in state.steps] == [StepStatus.COMPENSATED, StepStatus.COMPENSATED]
    assert (await balance(db_a, "alice"), await balance(db_b, "bob")) == (100, 0)
    assert a.proxy.forwarded[("0", "compensate")] == 3
    assert b.proxy.forwarded[("1", "compensate")] == 3


def _bound(fn: Any) -> Any:
    """An unbound Bank method as a one-argument step (only its metadata is read)."""
    return fn.__get__(object())


@step(name="Keys")
def keys(d: dict[str, int]) -> list[str]:
    assert info().step_name == "Keys"  # info() works in the executor's thread
    return sorted(d)


async def test_dict_payloads_and_typed_results(tm_client: TmClient) -> None:
    async with ParticipantServer(steps=[keys], service="demo.v1.Demo", host="127.0.0.1") as s:
        job = tm_client.job(retry_policy=FAST)
        job.add_step(keys, {"b": 2, "a": 1}, target=s)
        await job.start()
        state = await job.wait(timeout=30)
        assert state.step_result(keys) == ["a", "b"]
        assert (await job.fetch()).status is JobStatus.SUCCEEDED
