"""The step contract on the wire, called with plain grpcio as the TM would."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from participant_sdk import ParticipantServer, RetryLater, StepFailed, info, step


@dataclass
class Item:
    sku: str


@step(name="Slow")
async def slow(item: Item) -> Item:
    await asyncio.sleep(0.5)
    return Item(sku=item.sku + "!")


@step(name="Later")
async def later() -> None:
    raise RetryLater(2.5, "wait for stock")


@step(name="Broken")
async def broken() -> None:
    raise KeyError(f"bug in {info().step_name}")


@step(name="Refuse")
async def refuse() -> None:
    raise StepFailed("no")


def _md(gid: str = "g1", op: str = "action") -> tuple[tuple[str, str], ...]:
    return (("stepping-gid", gid), ("stepping-step-index", "0"), ("stepping-op", op))


@pytest_asyncio.fixture
async def server() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer(
        steps=[slow, later, broken, refuse], service="shop.v1.Shop", host="127.0.0.1"
    ) as s:
        yield s


async def _call(
    server: ParticipantServer,
    method: str,
    body: bytes = b"",
    md: tuple[tuple[str, str], ...] | None = None,
) -> bytes:
    async with grpc.aio.insecure_channel(server.target) as channel:
        rpc = channel.unary_unary(
            f"/shop.v1.Shop/{method}", request_serializer=None, response_deserializer=None
        )
        return bytes(await rpc(body, metadata=md if md is not None else _md(), timeout=5))


async def _error(
    server: ParticipantServer,
    method: str,
    body: bytes = b"",
    md: tuple[tuple[str, str], ...] | None = None,
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(server, method, body, md)
    return err.value


async def test_status_codes(server: ParticipantServer, caplog: pytest.LogCaptureFixture) -> None:
    assert await _call(server, "Slow", b'{"sku": "a"}') == b'{"sku": "a!"}'

    refused = await _error(server, "Refuse")
    assert (refused.code(), refused.details()) == (grpc.StatusCode.ABORTED, "no")

    later = await _error(server, "Later")
    assert later.code() is grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(later)  # type: ignore[arg-type]
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 2.5

    with caplog.at_level(logging.ERROR, logger="participant_sdk"):
        broken = await _error(server, "Broken", md=_md(gid="gid-42"))
    assert broken.code() is grpc.StatusCode.INTERNAL
    assert "KeyError" in (broken.details() or "")
    assert any("gid-42" in r.getMessage() and r.exc_info for r in caplog.records)

    bad_payload = await _error(server, "Slow", b"{not json")
    assert bad_payload.code() is grpc.StatusCode.ABORTED  # retrying cannot fix it
    assert "invalid payload" in (bad_payload.details() or "")

    no_undo = await _error(server, "Slow", b'{"sku": "a"}', md=_md(op="compensate"))
    assert no_undo.code() is grpc.StatusCode.UNIMPLEMENTED

    not_from_tm = await _error(server, "Slow", b'{"sku": "a"}', md=())
    assert not_from_tm.code() is grpc.StatusCode.INVALID_ARGUMENT

    unknown = await _error(server, "Nope")
    assert unknown.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_graceful_stop_lets_running_steps_finish() -> None:
    server = ParticipantServer(steps=[slow], service="shop.v1.Shop", host="127.0.0.1")
    await server.start()
    call = asyncio.create_task(_call(server, "Slow", b'{"sku": "b"}'))
    await asyncio.sleep(0.2)
    await server.stop(grace=3)
    assert await call == b'{"sku": "b!"}'
