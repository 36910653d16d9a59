"""The barrier table: create it once per participant database.

Either call :func:`create_barrier_table` at start-up (idempotent), or put the DDL into
your own migrations (Alembic, Flyway, ...): :data:`BARRIER_TABLE_DDL` for Postgres,
:func:`barrier_table_ddl` for any supported database. The table name and columns are
DTM's, so the two can share a database.
"""

from __future__ import annotations

from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateTable, DropTable, ExecutableDDLElement

from participant_sdk._barrier import SUPPORTED_DIALECTS, barrier_table, dialect_name

__all__ = ["BARRIER_TABLE_DDL", "barrier_table_ddl", "create_barrier_table", "drop_barrier_table"]

_CREATE = CreateTable(barrier_table, if_not_exists=True)


def _dialect(name: str) -> Dialect:
    if name == "postgresql":
        return PGDialect()  # type: ignore[no-untyped-call]
    if name in ("mysql", "mariadb"):
        return MySQLDialect()  # the same DDL on both
    if name == "sqlite":
        return SQLiteDialect()
    raise ValueError(
        f"the barrier does not support the {name!r} dialect; "
        f"supported: {', '.join(SUPPORTED_DIALECTS)}"
    )


def barrier_table_ddl(dialect: str = "postgresql") -> str:
    """``CREATE TABLE IF NOT EXISTS stepping_barrier (...);`` for a SQLAlchemy dialect
    name: ``"postgresql"``, ``"mysql"``, ``"mariadb"`` or ``"sqlite"``."""
    return str(_CREATE.compile(dialect=_dialect(dialect))).strip() + ";"


#: ``CREATE TABLE IF NOT EXISTS stepping_barrier (...)`` for Postgres.
BARRIER_TABLE_DDL: str = barrier_table_ddl("postgresql")


async def create_barrier_table(bind: AsyncEngine | AsyncConnection) -> None:
    """Creates ``stepping_barrier`` if it does not exist (safe to call at every start)."""
    await _execute(bind, _CREATE)


async def drop_barrier_table(bind: AsyncEngine | AsyncConnection) -> None:
    """Drops ``stepping_barrier`` if it exists (tests, uninstall)."""
    await _execute(bind, DropTable(barrier_table, if_exists=True))


async def _execute(bind: AsyncEngine | AsyncConnection, ddl: ExecutableDDLElement) -> None:
    dialect_name(bind)  # a clear error for an unsupported database, before any DDL
    if isinstance(bind, AsyncEngine):
        async with bind.begin() as conn:
            await conn.execute(ddl)
    else:
        await bind.execute(ddl)
