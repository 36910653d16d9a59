"""Jobs through a real TM to SDK participants: outcomes, payloads, retries, info()."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
import pytest_asyncio
from google.protobuf import wrappers_pb2

from participant_sdk import (
    Endpoint,
    ParticipantServer,
    RetryLater,
    RetryPolicy,
    StepFailed,
    StepInfo,
    TmClient,
    info,
    step,
)
from participant_sdk.client import JobStatus, StepStatus
from participant_sdk.errors import (
    GidConflict,
    InvalidArgument,
    InvalidState,
    TmUnavailable,
    TransactionNotFound,
)

FAST = RetryPolicy(initial_interval=0.1, backoff_coefficient=1.0, maximum_interval=0.2)


@dataclass
class Parcel:
    weight: int
    tags: list[str]


class Invoice(pydantic.BaseModel):
    number: int
    customer: str


@dataclass
class Recorder:
    """What the steps of this module saw."""

    infos: list[StepInfo] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    walls: list[datetime] = field(default_factory=list)


@pytest_asyncio.fixture
async def shop() -> AsyncIterator[tuple[ParticipantServer, Recorder]]:
    seen = Recorder()

    def record() -> StepInfo:
        seen.infos.append(info())
        seen.times.append(time.monotonic())
        seen.walls.append(datetime.now(UTC))
        return info()

    @step(name="Upper")
    async def upper(s: wrappers_pb2.StringValue) -> wrappers_pb2.StringValue:
        record()
        return wrappers_pb2.StringValue(value=s.value.upper())

    @step(name="Weigh")
    async def weigh(p: Parcel) -> Parcel:
        record()
        return Parcel(weight=p.weight * 2, tags=[*p.tags, "weighed"])

    @step(name="Bill")
    async def bill(i: Invoice) -> Invoice:
        record()
        return Invoice(number=i.number + 1, customer=i.customer.title())

    @step(name="Reverse")
    async def reverse(data: bytes) -> bytes:
        record()
        return data[::-1]

    @step(name="Refuse")
    async def refuse(data: bytes) -> None:
        record()
        raise StepFailed(f"card declined: {data.decode()}")

    @step(name="NotYet")
    async def not_yet() -> None:
        if record().attempt == 1:
            raise RetryLater(timedelta(seconds=1.5), "stock arrives soon")

    @step(name="Flaky")
    async def flaky() -> bytes:
        if record().attempt < 3:
            raise RuntimeError("database hiccup")
        return b"ok"

    steps: list[Callable[..., Awaitable[Any]]] = [
        upper,
        weigh,
        bill,
        reverse,
        refuse,
        not_yet,
        flaky,
    ]
    async with ParticipantServer(steps=steps, service="shop.v1.Shop", host="127.0.0.1") as server:
        yield server, seen


async def test_typed_payloads_round_trip(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, _ = shop
    job = tm_client.job(retry_policy=FAST)
    job.add_step(server.endpoint("Upper"), wrappers_pb2.StringValue(value="abc"))
    job.add_step(server.endpoint("Weigh"), Parcel(weight=3, tags=["fragile"]))
    job.add_step(server.endpoint("Bill"), Invoice(number=41, customer="ann lee"))
    job.add_step(server.endpoint("Reverse"), b"\x00\x01\x02")
    state = await job.start(wait=True, wait_timeout=10)
    assert state.status is JobStatus.SUCCEEDED, state
    upper, weigh, bill, reverse = state.steps
    assert upper.result_as(wrappers_pb2.StringValue).value == "ABC"
    assert weigh.result_as(Parcel) == Parcel(weight=6, tags=["fragile", "weighed"])
    assert bill.result_as(Invoice) == Invoice(number=42, customer="Ann Lee")
    assert reverse.result == b"\x02\x01\x00"


async def test_info_carries_the_call_context(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, seen = shop
    job = tm_client.job(retry_policy=FAST)
    job.add_step(server.endpoint("Reverse"), b"a", name="first")
    job.add_step(
        server.endpoint("Reverse"), b"b", headers={"x-tenant": "t1"}, timeout=timedelta(seconds=2)
    )
    state = await job.start(wait=True, wait_timeout=10)
    assert state.status is JobStatus.SUCCEEDED
    first, second = seen.infos
    assert (first.gid, first.step_index, first.step_name, first.op, first.attempt) == (
        job.gid,
        0,
        "first",
        "action",
        1,
    )
    assert (second.step_index, second.step_name) == (1, "Reverse")
    assert second.headers["x-tenant"] == "t1"
    assert second.deadline is not None
    assert first.deadline is not None
    # The deadline is the call's: the step's own timeout (2 s), else the TM's default (3 s).
    assert timedelta(seconds=1.5) < second.deadline - seen.walls[1] <= timedelta(seconds=2.1)
    assert timedelta(seconds=2.5) < first.deadline - seen.walls[0] <= timedelta(seconds=3.1)


async def test_step_failed_fails_the_job_with_its_message(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, seen = shop
    job = tm_client.job(retry_policy=FAST)
    job.add_step(server.endpoint("Refuse"), b"code 51")
    job.add_step(server.endpoint("Reverse"), b"never")
    state = await job.start(wait=True, wait_timeout=10)
    assert state.status is JobStatus.FAILED
    assert "card declined: code 51" in state.error
    refused, later = state.steps
    assert refused.status is StepStatus.FAILED and refused.attempts == 1  # never retried
    assert "card declined: code 51" in refused.last_error
    assert later.status is StepStatus.PENDING and later.attempts == 0
    assert [i.step_name for i in seen.infos] == ["Refuse"]


async def test_retry_later_waits_for_the_delay(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, seen = shop
    job = tm_client.job(retry_policy=FAST)  # the base interval (0.1 s) is shorter
    job.add_step(server.endpoint("NotYet"))
    state = await job.start(wait=True, wait_timeout=10)
    assert state.status is JobStatus.SUCCEEDED
    assert [i.attempt for i in seen.infos] == [1, 2]
    assert seen.times[1] - seen.times[0] >= 1.4


async def test_other_exceptions_are_retried(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, seen = shop
    job = tm_client.job(retry_policy=FAST)
    job.add_step(server.endpoint("Flaky"))
    state = await job.start(wait=True, wait_timeout=10)
    assert state.status is JobStatus.SUCCEEDED
    assert state.steps[0].result == b"ok"
    assert [i.attempt for i in seen.infos] == [1, 2, 3]
    assert state.steps[0].attempts == 3


async def test_start_without_wait_then_result(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, _ = shop
    job = tm_client.job("sdk-" + "x" * 8, retry_policy=FAST)
    job.add_step(server.endpoint("Reverse"), b"ab")
    state = await job.start()
    assert state.gid == "sdk-xxxxxxxx"
    assert state.status in (JobStatus.SUBMITTED, JobStatus.SUCCEEDED)
    deadline = time.monotonic() + 10
    while (state := await job.fetch()).status is not JobStatus.SUCCEEDED:
        assert time.monotonic() < deadline, state
    assert state.steps[0].result == b"ba"


async def test_tm_errors_are_mapped(
    tm_client: TmClient, shop: tuple[ParticipantServer, Recorder]
) -> None:
    server, _ = shop
    with pytest.raises(TransactionNotFound) as not_found:
        await tm_client.get("no-such-gid")
    assert not_found.value.gid == "no-such-gid"

    job = tm_client.job(retry_policy=FAST)
    job.add_step(server.endpoint("Reverse"), b"x")
    await job.start(wait=True, wait_timeout=10)
    with pytest.raises(InvalidState) as invalid_state:
        await tm_client.abort(job.gid)
    assert invalid_state.value.status == "TRANSACTION_STATUS_SUCCEEDED"

    other = tm_client.job(job.gid)
    other.add_step(server.endpoint("Upper"), b"")
    with pytest.raises(GidConflict):
        await other.start()

    bad = tm_client.job()
    bad.add_step(Endpoint(server.target, "no-slash"), b"")
    with pytest.raises(InvalidArgument) as invalid:
        await bad.start()
    assert invalid.value.field.startswith("steps[0]"), invalid.value.field

    with pytest.raises(TmUnavailable):
        await TmClient.connect("127.0.0.1:1", timeout=0.5)
