"""Apply the Alembic migrations (``stepping-tm db upgrade``, and on start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"
# Serialises replicas that start together and all try to migrate.
_LOCK_KEY = 0x5354_4550  # "STEP"


def _upgrade_sync(connection: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    command.upgrade(cfg, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (in one transaction)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, revision)
