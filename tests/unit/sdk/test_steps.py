"""@step / @compensation only attach metadata; definitions read the payload types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from stepping.tm.v1 import tm_pb2

from participant_sdk import Endpoint, ParticipantServer, compensation, step
from participant_sdk._step import step_definition


@dataclass
class Transfer:
    account: str
    amount: int


@step(name="Debit")
async def debit(t: Transfer) -> tm_pb2.Endpoint:
    return tm_pb2.Endpoint(target=t.account)


@compensation(for_step=debit)
async def undo_debit(t: Transfer) -> None:
    return None


@step
async def ping() -> bytes:
    return b"pong"


async def test_decorated_functions_stay_callable() -> None:
    assert (await debit(Transfer("a", 1))).target == "a"
    assert await ping() == b"pong"
    assert debit.__name__ == "debit"


def test_definitions() -> None:
    d = step_definition(debit)
    assert (d.kind, d.name) == ("step", "Debit")
    assert d.arg is not None and d.arg.type is Transfer
    assert d.result.type is tm_pb2.Endpoint
    c = step_definition(undo_debit)
    assert (c.kind, c.name) == ("compensation", "Debit")
    assert c.result.type is None
    p = step_definition(ping)
    assert (p.name, p.arg) == ("ping", None)


def test_methods_can_be_steps() -> None:
    class Bank:
        def __init__(self) -> None:
            self.calls = 0

        @step(name="Credit")
        async def credit(self, t: Transfer) -> None:
            self.calls += 1

    d = step_definition(Bank().credit)
    assert d.name == "Credit"
    assert d.arg is not None and d.arg.type is Transfer


def test_bad_functions_are_refused() -> None:
    with pytest.raises(TypeError, match="not a generator"):

        @step(name="gen")
        async def gen() -> AsyncIterator[bytes]:
            yield b""

    @step(name="plain")
    def plain_sync(t: Transfer) -> None: ...

    assert not step_definition(plain_sync).is_async

    @step(name="two")
    async def two(a: bytes, b: bytes) -> None: ...

    with pytest.raises(TypeError, match="at most one argument"):
        step_definition(two)

    @step(name="bad")
    async def bad(a: complex) -> None: ...

    with pytest.raises(TypeError, match="unsupported payload type"):
        step_definition(bad)

    async def plain() -> None: ...

    with pytest.raises(TypeError, match="not decorated"):
        step_definition(plain)


def test_server_checks_registrations() -> None:
    with pytest.raises(ValueError, match="service is required"):
        ParticipantServer(steps=[debit])
    with pytest.raises(ValueError, match="two steps named 'Debit'"):
        ParticipantServer(steps=[debit, debit], service="b.v1.B")
    with pytest.raises(ValueError, match="not served"):
        ParticipantServer(steps=[undo_debit], service="b.v1.B")
    server = ParticipantServer(steps=[debit, undo_debit, ping], service="b.v1.B")
    assert server.step_names == ["Debit", "ping"]


def test_endpoints() -> None:
    assert Endpoint.for_step("h:1", "b.v1.B", debit) == Endpoint("h:1", "/b.v1.B/Debit")
    assert Endpoint.for_step("h:1", "b.v1.B", "Credit").method == "/b.v1.B/Credit"
    assert Endpoint.query_prepared("h:2").method == (
        "/stepping.participant.v1.ParticipantService/QueryPrepared"
    )


def test_a_plain_def_step_runs_in_a_step_environment() -> None:
    from participant_sdk import info
    from participant_sdk.testing import StepEnvironment

    @step(name="Where")
    def where(t: Transfer) -> str:
        return f"{info().gid}:{t.account}"

    assert StepEnvironment(gid="g-7").run_sync(where, Transfer("alice", 1)) == "g-7:alice"
