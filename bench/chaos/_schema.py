"""The tables of the chaos run's participants, shared by the banks, the load and the checks.

Each bank keeps its balances and a **ledger**: one row per applied effect, written in the
same transaction as the balance change and without a unique key, so an effect applied
twice shows up as two rows. The orders database holds one row per committed 2-phase job.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk.migrations import create_barrier_table

__all__ = [
    "POISON_REF",
    "accounts",
    "bank_metadata",
    "create_bank_schema",
    "create_orders_schema",
    "ledger",
    "orders",
    "orders_metadata",
]

bank_metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    bank_metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
)

ledger = sa.Table(
    "ledger",
    bank_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("gid", sa.Text, nullable=False),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("op", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Index("ix_ledger_gid", "gid"),
)

orders_metadata = sa.MetaData()

#: The ``ref`` of the seed order. An order inserted with it violates the deferred unique
#: key at COMMIT (SQLSTATE 23505): the way the load makes a local transaction fail *after*
#: the job was prepared, through the SDK's public ``job.start(conn)``.
POISON_REF = "poison"

orders = sa.Table(
    "orders",
    orders_metadata,
    sa.Column("gid", sa.Text, primary_key=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("ref", sa.Text, nullable=False),
    sa.UniqueConstraint("ref", name="orders_ref_uniq", deferrable=True, initially="DEFERRED"),
)


async def create_bank_schema(engine: AsyncEngine, balances: dict[str, int]) -> None:
    """The barrier, accounts and ledger tables, with the accounts opened at ``balances``."""
    await create_barrier_table(engine)
    async with engine.begin() as conn:
        await conn.run_sync(bank_metadata.create_all)
        for name, balance in balances.items():
            await conn.execute(
                pg_insert(accounts).values(name=name, balance=balance).on_conflict_do_nothing()
            )


async def create_orders_schema(engine: AsyncEngine) -> None:
    """The barrier and orders tables, and the seed order holding :data:`POISON_REF`."""
    await create_barrier_table(engine)
    async with engine.begin() as conn:
        await conn.run_sync(orders_metadata.create_all)
        seeded = await conn.scalar(sa.select(sa.func.count()).where(orders.c.gid == "seed"))
        if not seeded:
            await conn.execute(orders.insert().values(gid="seed", amount=0, ref=POISON_REF))
