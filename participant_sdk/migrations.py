"""The barrier table: create it once per participant database.

Either call :func:`create_barrier_table` at start-up (idempotent), or put
:data:`BARRIER_TABLE_DDL` into your own migrations (Alembic, Flyway, ...). The table
name and columns are DTM's, so the two can share a database.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateTable, DropTable, ExecutableDDLElement

from participant_sdk._barrier import barrier_table

__all__ = ["BARRIER_TABLE_DDL", "create_barrier_table", "drop_barrier_table"]

_CREATE = CreateTable(barrier_table, if_not_exists=True)

_DIALECT = PGDialect()  # type: ignore[no-untyped-call]

#: ``CREATE TABLE IF NOT EXISTS stepping_barrier (...)`` for Postgres.
BARRIER_TABLE_DDL: str = str(_CREATE.compile(dialect=_DIALECT)).strip() + ";"


async def create_barrier_table(bind: AsyncEngine | AsyncConnection) -> None:
    """Creates ``stepping_barrier`` if it does not exist (safe to call at every start)."""
    await _execute(bind, _CREATE)


async def drop_barrier_table(bind: AsyncEngine | AsyncConnection) -> None:
    """Drops ``stepping_barrier`` if it exists (tests, uninstall)."""
    await _execute(bind, DropTable(barrier_table, if_exists=True))


async def _execute(bind: AsyncEngine | AsyncConnection, ddl: ExecutableDDLElement) -> None:
    if isinstance(bind, AsyncEngine):
        async with bind.begin() as conn:
            await conn.execute(ddl)
    else:
        await bind.execute(ddl)
