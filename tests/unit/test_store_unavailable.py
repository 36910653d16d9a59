"""Which driver errors mean "the database is not there": they become StoreUnavailable."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from tm_service.errors import StoreUnavailable
from tm_service.store._unavailable import ReportsUnavailable, is_unavailable, map_unavailable


def _wrapped(orig: BaseException) -> sa_exc.DBAPIError:
    err = sa_exc.DBAPIError("SELECT 1", None, Exception(str(orig)))
    err.__cause__ = orig
    return err


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        OSError("network unreachable"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.TooManyConnectionsError("too many clients"),
        _wrapped(asyncpg.CannotConnectNowError("starting up")),
        sa_exc.InterfaceError("SELECT 1", None, Exception("closed")),
        sa_exc.DBAPIError("SELECT 1", None, Exception("x"), connection_invalidated=True),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 0 reached"),
        sa_exc.DisconnectionError("connection invalidated"),
    ],
    ids=type,
)
def test_connection_level_failures_are_unavailable(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence"),
        _wrapped(asyncpg.NotNullViolationError("null value")),
        ValueError("a bug"),
    ],
    ids=type,
)
def test_other_errors_are_not(exc: BaseException) -> None:
    assert not is_unavailable(exc)


async def test_a_store_operation_maps_them_once_with_one_line() -> None:
    @map_unavailable
    async def op() -> None:
        try:
            raise asyncpg.CannotConnectNowError("the database system is shutting down")
        except asyncpg.PostgresError as err:
            raise _wrapped(err) from err

    with pytest.raises(StoreUnavailable) as info:
        await op()
    assert info.value.message.startswith("database unavailable: DBAPIError")
    assert "\n" not in info.value.message

    @map_unavailable
    async def bug() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await bug()


async def test_a_store_that_reports_unavailable_tells_its_owner_once() -> None:
    heard: list[StoreUnavailable] = []

    class Store(ReportsUnavailable):
        @map_unavailable
        async def op(self, fail: bool) -> None:
            if fail:
                raise asyncpg.ConnectionDoesNotExistError("connection was closed")
            raise ValueError("a bug")

    store = Store()
    store.on_unavailable = heard.append
    with pytest.raises(StoreUnavailable) as info:
        await store.op(True)
    assert heard == [info.value]
    with pytest.raises(ValueError):
        await store.op(False)
    assert len(heard) == 1  # a bug is not an outage
