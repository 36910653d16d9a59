"""Alembic environment: runs on the connection handed in by ``tm_service.store.migrate``."""

from __future__ import annotations

from alembic import context

from tm_service.store._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `stepping-tm db upgrade`, not the alembic CLI")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="stepping_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
