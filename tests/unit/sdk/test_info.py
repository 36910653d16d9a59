"""info() inside and outside steps; metadata parsing; the testing helpers."""

from __future__ import annotations

import asyncio

import pytest

from participant_sdk import StepInfo, info, step
from participant_sdk._handler import parse_step_info
from participant_sdk.testing import StepEnvironment, make_info, run_step


@step(name="Who")
async def who() -> bytes:
    i = info()
    return f"{i.gid}/{i.step_index}/{i.step_name}/{i.op}/{i.attempt}".encode()


def test_info_outside_a_step_raises() -> None:
    with pytest.raises(RuntimeError, match="not in a step call"):
        info()


def test_parse_metadata() -> None:
    got = parse_step_info(
        [
            ("stepping-gid", "g-1"),
            ("stepping-step-index", "2"),
            ("stepping-step-name", "Credit"),
            ("stepping-op", "compensate"),
            ("stepping-attempt", "4"),
            ("traceparent", "00-abc-def-01"),
            ("x-tenant", "t1"),
            ("user-agent", "grpc-python"),
            ("trace-bin", b"\x00"),
        ],
        1.5,
    )
    assert (got.gid, got.step_index, got.step_name, got.op, got.attempt) == (
        "g-1",
        2,
        "Credit",
        "compensate",
        4,
    )
    assert got.branch_id == "03"
    assert dict(got.headers) == {"traceparent": "00-abc-def-01", "x-tenant": "t1"}
    assert got.traceparent == "00-abc-def-01"
    remaining = got.time_remaining()
    assert remaining is not None and 1.0 < remaining <= 1.5


def test_parse_metadata_refuses_non_tm_calls() -> None:
    with pytest.raises(ValueError, match="stepping-gid"):
        parse_step_info([("x", "y")], None)
    with pytest.raises(ValueError, match="stepping-op"):
        parse_step_info([("stepping-gid", "g"), ("stepping-op", "undo")], None)
    assert parse_step_info([("stepping-gid", "g")], None).deadline is None


async def test_step_environment_sets_info() -> None:
    env = StepEnvironment(gid="g9", step_index=1, step_name="Who", op="compensate", attempt=3)
    assert await env.run(who) == b"g9/1/Who/compensate/3"
    assert await run_step(who, info=make_info(gid="g7")) == b"g7/0/test-step/action/1"
    with pytest.raises(RuntimeError):
        info()  # reset afterwards


async def test_concurrent_steps_see_their_own_info() -> None:
    async def one(gid: str) -> bytes:
        await asyncio.sleep(0)
        return await StepEnvironment(gid=gid).run(who)

    results = await asyncio.gather(*(one(f"g{i}") for i in range(20)))
    assert [r.split(b"/")[0] for r in results] == [f"g{i}".encode() for i in range(20)]


def test_step_info_from_a_base() -> None:
    base = make_info(gid="a")
    env = StepEnvironment(base, attempt=5)
    assert isinstance(env.info, StepInfo)
    assert (env.info.gid, env.info.attempt) == ("a", 5)
