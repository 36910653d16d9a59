"""A bank participant: ``Debit`` and ``Credit`` steps on its own Postgres database.

Each step guards its writes with the barrier, so a step delivered twice moves money
once, and a compensation that overtakes its action cancels it. Run one process per
bank::

    python examples/python/bank.py --name bank-a --port 50061 \
        --db postgresql+asyncpg://postgres@127.0.0.1:5432/bank_a --seed alice=100
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk import ParticipantServer, StepFailed, barrier, compensation, info, step
from participant_sdk.migrations import create_barrier_table

__all__ = ["SERVICE", "Bank", "Transfer", "accounts", "create_schema"]

SERVICE = "bank.v1.Bank"

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
)

_log = logging.getLogger("bank")


@dataclass
class Transfer:
    """The payload of Debit and Credit (JSON on the wire)."""

    account: str
    amount: int
    order_id: str = ""


class Bank:
    """The steps of one bank, bound to its database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @step(name="Debit")
    async def debit(self, t: Transfer) -> None:
        async with self.engine.begin() as conn:
            if not await barrier(conn):
                return  # a duplicate: the money already moved
            balance = await conn.scalar(
                sa.select(accounts.c.balance).where(accounts.c.name == t.account).with_for_update()
            )
            if balance is None or balance < t.amount:
                # Business failure: the TM does not retry it. The barrier row is rolled
                # back with this transaction, which is fine: the step did nothing.
                raise StepFailed(f"insufficient funds in {t.account!r} for {t.amount}")
            await conn.execute(_add(t.account, -t.amount))
        _log.info("debited %s %d (gid %s)", t.account, t.amount, info().gid)

    @compensation(for_step="Debit")
    async def undo_debit(self, t: Transfer) -> None:
        async with self.engine.begin() as conn:
            if await barrier(conn):
                await conn.execute(_add(t.account, t.amount))

    @step(name="Credit")
    async def credit(self, t: Transfer) -> None:
        async with self.engine.begin() as conn:
            if not await barrier(conn):
                return
            exists = await conn.scalar(
                sa.select(sa.func.count()).where(accounts.c.name == t.account)
            )
            if not exists:
                raise StepFailed(f"no account {t.account!r}")
            await conn.execute(_add(t.account, t.amount))
        _log.info("credited %s %d (gid %s)", t.account, t.amount, info().gid)

    @compensation(for_step="Credit")
    async def undo_credit(self, t: Transfer) -> None:
        async with self.engine.begin() as conn:
            if await barrier(conn):
                await conn.execute(_add(t.account, -t.amount))

    def steps(self) -> list[Callable[..., Awaitable[None]]]:
        return [self.debit, self.undo_debit, self.credit, self.undo_credit]


def _add(account: str, amount: int) -> sa.Update:
    return (
        sa.update(accounts)
        .where(accounts.c.name == account)
        .values(balance=accounts.c.balance + amount)
    )


async def create_schema(engine: AsyncEngine, seed: dict[str, int] | None = None) -> None:
    """Creates the accounts and barrier tables; ``seed`` opens accounts if missing."""
    await create_barrier_table(engine)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for name, balance in (seed or {}).items():
            await conn.execute(
                sa.dialects.postgresql.insert(accounts)
                .values(name=name, balance=balance)
                .on_conflict_do_nothing()
            )


async def main() -> None:
    from _db import open_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bank")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061)
    parser.add_argument("--db", required=True, help="postgresql+asyncpg://... (created if missing)")
    parser.add_argument("--seed", action="append", default=[], help="account=balance")
    parser.add_argument(
        "--balances", action="store_true", help="print every account's balance and exit"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.name} %(message)s")

    engine = await open_database(args.db)
    seed = {k: int(v) for k, v in (s.split("=", 1) for s in args.seed)}
    await create_schema(engine, seed)
    if args.balances:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(accounts).order_by(accounts.c.name))
            for name, balance in rows:
                print(f"{args.name} {name}: {balance}")
        await engine.dispose()
        return
    bank = Bank(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ParticipantServer(
        steps=bank.steps(), service=SERVICE, host=args.host, port=args.port
    ) as server:
        print(f"{args.name} serving {server.step_names} on {server.target}", flush=True)
        await stop.wait()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
