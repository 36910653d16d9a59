"""The one place where losing the database becomes ``StoreUnavailable``.

Connection-level failures arrive in many shapes: ``OSError`` from the socket, asyncpg's
``InterfaceError`` / ``ConnectionDoesNotExistError`` (closed mid-query), server states
such as ``CannotConnectNowError`` (57P03, starting or shutting down), SQLAlchemy's
``DBAPIError`` wrapping any of these. ``map_unavailable`` wraps a whole store operation
(connect, statements, commit, release), like httpx's ``map_httpcore_exceptions``, so
none of them escapes as something a client would see as INTERNAL. A store that
``ReportsUnavailable`` also tells its owner at once (the server turns health NOT_SERVING).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg
from sqlalchemy import exc as sa_exc

from tm_service.errors import StoreUnavailable

__all__ = ["ReportsUnavailable", "is_unavailable", "map_unavailable"]

# SQLSTATE classes and codes that mean "the database is not there right now".
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")

_P = ParamSpec("_P")
_R = TypeVar("_R")


class ReportsUnavailable:
    """A store whose ``on_unavailable`` hears of every StoreUnavailable its operations raise."""

    on_unavailable: Callable[[StoreUnavailable], None] | None = None


def is_unavailable(exc: BaseException) -> bool:
    """Does ``exc`` (or what it wraps) say the database cannot be reached or used now?"""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError | asyncpg.InterfaceError | TimeoutError):
            return True
        if isinstance(e, asyncpg.PostgresError):
            state = getattr(e, "sqlstate", "") or ""
            if state.startswith(_UNAVAILABLE_SQLSTATES):
                return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        # A closed or invalidated connection, or no pool connection to be had in time.
        if isinstance(e, sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True
        if isinstance(e, sa_exc.DBAPIError):
            todo.append(e.orig)
        todo.extend((e.__cause__, e.__context__))
    return False


def describe(exc: BaseException) -> str:
    """One line: what failed, without a driver traceback."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def map_unavailable(
    fn: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Decorate a store operation: connection-level failures raise StoreUnavailable."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kwargs)
        except StoreUnavailable:
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            err = StoreUnavailable(f"database unavailable: {describe(exc)}")
            owner = args[0] if args else None
            if isinstance(owner, ReportsUnavailable) and owner.on_unavailable is not None:
                owner.on_unavailable(err)
            raise err from exc

    return wrapper
