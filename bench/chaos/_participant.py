"""The chaos run's participants, written with the SDK, one process each.

``python -m bench.chaos._participant bank --port P --db URL [--no-barrier] [faults]``
serves ``chaos.v1.Bank/Debit`` and ``/Credit`` (each with its compensation) on its own
database; ``python -m bench.chaos._participant orders --port P --db URL`` serves the
orders service's ``QueryPrepared``. Each prints ``READY <port>`` once it serves and runs
until SIGTERM (or SIGKILL, which is the point).

A bank step guards its writes with the barrier unless ``--no-barrier``: that switch is a
fault injection (a participant that is not idempotent), under which the run's money and
exactly-once checks must fail.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.chaos._faults import Fault, FaultPlan
from bench.chaos._schema import accounts, ledger
from participant_sdk import (
    ParticipantServer,
    StepFailed,
    StepInfo,
    barrier,
    compensation,
    info,
    step,
)

__all__ = ["BANK_SERVICE", "CRASH_EXIT_CODE", "Bank", "InjectedFault", "Transfer", "main"]

BANK_SERVICE = "chaos.v1.Bank"

#: The exit status of a bank that crashed on purpose after a commit.
CRASH_EXIT_CODE = 70


@dataclass
class Transfer:
    """The payload of Debit and Credit (JSON on the wire)."""

    account: str
    amount: int


class InjectedFault(ConnectionError):
    """A fault injected by the chaos run (the SDK answers UNAVAILABLE: retried)."""


def _announce(fault: Fault, call: StepInfo) -> None:
    # The run counts these lines in the log (flushed: a crash may follow).
    print(f"FAULT {fault.value} {call.gid} {call.step_index} {call.op}", flush=True)


class Bank:
    """Debit and Credit on one bank's database, with injected faults."""

    def __init__(self, engine: AsyncEngine, faults: FaultPlan, *, use_barrier: bool) -> None:
        self.engine = engine
        self.faults = faults
        self.use_barrier = use_barrier

    async def _apply(self, t: Transfer, delta: int, *, check_funds: bool) -> None:
        call = info()
        fault = self.faults.decide(call.gid, call.step_index, call.op, call.attempt)
        if fault is Fault.BEFORE_COMMIT:
            _announce(fault, call)
            raise InjectedFault("chaos: fails before commit")
        async with self.engine.begin() as conn:
            if self.use_barrier and not await barrier(conn):
                return  # a duplicate delivery: the effect is already there
            balance = await conn.scalar(
                sa.select(accounts.c.balance).where(accounts.c.name == t.account).with_for_update()
            )
            if balance is None:
                raise StepFailed(f"no account {t.account!r}")
            if check_funds and balance + delta < 0:
                raise StepFailed(f"insufficient funds in {t.account!r} for {-delta}")
            await conn.execute(
                sa.update(accounts)
                .where(accounts.c.name == t.account)
                .values(balance=accounts.c.balance + delta)
            )
            await conn.execute(
                ledger.insert().values(
                    gid=call.gid,
                    step_index=call.step_index,
                    op=call.op,
                    account=t.account,
                    delta=delta,
                )
            )
        if fault is Fault.AFTER_COMMIT:
            _announce(fault, call)
            raise InjectedFault("chaos: fails after commit")
        if fault is Fault.CRASH_AFTER_COMMIT:
            _announce(fault, call)
            os._exit(CRASH_EXIT_CODE)

    @step(name="Debit")
    async def debit(self, t: Transfer) -> None:
        await self._apply(t, -t.amount, check_funds=True)

    @compensation(for_step="Debit")
    async def undo_debit(self, t: Transfer) -> None:
        await self._apply(t, t.amount, check_funds=False)

    @step(name="Credit")
    async def credit(self, t: Transfer) -> None:
        await self._apply(t, t.amount, check_funds=False)

    @compensation(for_step="Credit")
    async def undo_credit(self, t: Transfer) -> None:
        await self._apply(t, -t.amount, check_funds=False)

    def steps(self) -> list[Callable[..., Awaitable[None]]]:
        return [self.debit, self.undo_debit, self.credit, self.undo_credit]


async def _serve(args: argparse.Namespace) -> None:
    engine = create_async_engine(args.db, pool_size=10, pool_pre_ping=True)
    if args.role == "bank":
        faults = FaultPlan(
            before_commit=args.before_commit,
            after_commit=args.after_commit,
            crash_after_commit=args.crash_after_commit,
            max_attempt=args.fault_max_attempt,
            seed=args.fault_seed,
        )
        bank = Bank(engine, faults, use_barrier=not args.no_barrier)
        server = ParticipantServer(
            steps=bank.steps(), service=BANK_SERVICE, host="127.0.0.1", port=args.port, grace=1.0
        )
    else:
        server = ParticipantServer(databases=engine, host="127.0.0.1", port=args.port, grace=1.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"READY {server.port}", flush=True)
        await stop.wait()
    await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("bank", "orders"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="postgresql+asyncpg://... (schema made)")
    parser.add_argument("--no-barrier", action="store_true", help="skip the barrier (a fault)")
    parser.add_argument("--before-commit", type=float, default=0.0)
    parser.add_argument("--after-commit", type=float, default=0.0)
    parser.add_argument("--crash-after-commit", type=float, default=0.0)
    parser.add_argument("--fault-max-attempt", type=int, default=2)
    parser.add_argument("--fault-seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # Every injected fault is logged by the SDK with its traceback; one line is enough.
    logging.getLogger("participant_sdk").setLevel(logging.CRITICAL)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
