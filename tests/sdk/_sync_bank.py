"""The bank of examples/python/bank.py as plain ``def`` steps on sync SQLAlchemy (psycopg):
the same steps, barrier(conn) returning a bool, run in the server's step_executor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from bank import Transfer, accounts

from participant_sdk import StepFailed, barrier, compensation, step


def _add(account: str, amount: int) -> sa.Update:
    return (
        sa.update(accounts)
        .where(accounts.c.name == account)
        .values(balance=accounts.c.balance + amount)
    )


class SyncBank:
    """The steps of one bank on a blocking engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @step(name="Debit")
    def debit(self, t: Transfer) -> None:
        with self.engine.begin() as conn:
            if not barrier(conn):
                return
            balance = conn.scalar(
                sa.select(accounts.c.balance).where(accounts.c.name == t.account).with_for_update()
            )
            if balance is None or balance < t.amount:
                raise StepFailed(f"insufficient funds in {t.account!r} for {t.amount}")
            conn.execute(_add(t.account, -t.amount))

    @compensation(for_step="Debit")
    def undo_debit(self, t: Transfer) -> None:
        with self.engine.begin() as conn:
            if barrier(conn):
                conn.execute(_add(t.account, t.amount))

    @step(name="Credit")
    def credit(self, t: Transfer) -> None:
        with self.engine.begin() as conn:
            if not barrier(conn):
                return
            if not conn.scalar(sa.select(sa.func.count()).where(accounts.c.name == t.account)):
                raise StepFailed(f"no account {t.account!r}")
            conn.execute(_add(t.account, t.amount))

    @compensation(for_step="Credit")
    def undo_credit(self, t: Transfer) -> None:
        with self.engine.begin() as conn:
            if barrier(conn):
                conn.execute(_add(t.account, -t.amount))

    def steps(self) -> list[Callable[..., Any]]:
        return [self.debit, self.undo_debit, self.credit, self.undo_credit]


def sync_url(async_url: str) -> sa.URL:
    """The psycopg (blocking) URL of an asyncpg URL."""
    return sa.make_url(async_url).set(drivername="postgresql+psycopg")
