"""The order service: creates an order and starts its payment job in one DB transaction.

The job (debit the buyer at bank A, credit the seller at bank B) runs only if the
order's transaction commits, even if this process dies right after the commit.

    # the long-running part: answers the TM's back-check from the orders database
    python examples/python/orders.py serve --port 50060 --db postgresql+asyncpg://.../orders

    # place an order (prints the job's gid; --wait shows how it ended)
    python examples/python/orders.py place --buyer alice --seller bob --amount 30 --wait \
        --db postgresql+asyncpg://.../orders
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from bank import SERVICE as BANK_SERVICE
from bank import Transfer
from sqlalchemy.ext.asyncio import AsyncEngine

from participant_sdk import Endpoint, ParticipantServer, RetryPolicy, TmClient
from participant_sdk.client import JobState
from participant_sdk.migrations import create_barrier_table

__all__ = ["Order", "create_schema", "orders", "place_order"]

metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("buyer", sa.Text, nullable=False),
    sa.Column("seller", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("gid", sa.Text, nullable=False, unique=True),
)


@dataclass
class Order:
    buyer: str
    seller: str
    amount: int
    id: str = ""


async def create_schema(engine: AsyncEngine) -> None:
    """Creates the orders and barrier tables if missing."""
    await create_barrier_table(engine)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def place_order(
    tm: TmClient,
    engine: AsyncEngine,
    order: Order,
    *,
    bank_a: str,
    bank_b: str,
    wait: bool = False,
    check_prepared_after: timedelta | None = None,
) -> JobState:
    """Inserts the order and starts its payment job in the same transaction.

    ``tm`` must have been connected with ``query_prepared=`` pointing at the
    ``serve`` process of this service.
    """
    order.id = order.id or uuid.uuid4().hex[:12]
    job = tm.job(
        mode="saga",
        retry_policy=RetryPolicy(initial_interval=0.5, maximum_interval=5),
        check_prepared_after=check_prepared_after,
    )
    job.add_step(
        Endpoint.for_step(bank_a, BANK_SERVICE, "Debit"),
        Transfer(order.buyer, order.amount, order.id),
        compensation=Endpoint.for_step(bank_a, BANK_SERVICE, "Debit"),
    )
    job.add_step(
        Endpoint.for_step(bank_b, BANK_SERVICE, "Credit"),
        Transfer(order.seller, order.amount, order.id),
        compensation=Endpoint.for_step(bank_b, BANK_SERVICE, "Credit"),
    )
    async with engine.connect() as conn:
        await conn.begin()
        await conn.execute(
            orders.insert().values(
                id=order.id,
                buyer=order.buyer,
                seller=order.seller,
                amount=order.amount,
                gid=job.gid,
            )
        )
        # Prepare → barrier row in this transaction → commit → Submit.
        return await job.start(conn, wait=wait)


async def serve(args: argparse.Namespace) -> None:
    from _db import open_database

    engine = await open_database(args.db)
    await create_schema(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ParticipantServer(
        databases={"default": engine}, host=args.host, port=args.port
    ) as server:
        print(f"orders answering QueryPrepared on {server.target}", flush=True)
        await stop.wait()
    await engine.dispose()


async def place(args: argparse.Namespace) -> None:
    from _db import open_database

    engine = await open_database(args.db)
    await create_schema(engine)
    async with TmClient.connect(args.tm, query_prepared=Endpoint.query_prepared(args.orders)) as tm:
        state = await place_order(
            tm,
            engine,
            Order(args.buyer, args.seller, args.amount),
            bank_a=args.bank_a,
            bank_b=args.bank_b,
            wait=args.wait,
        )
    print(f"order placed: job {state.gid} {state.status.name}", flush=True)
    for s in state.steps:
        print(f"  step {s.index} {s.name}: {s.status.name} {s.last_error}".rstrip())
    if state.error:
        print(f"  error: {state.error}")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="answer the TM's back-check (QueryPrepared)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50060)
    s.add_argument("--db", required=True, help="postgresql+asyncpg://... (created if missing)")
    p = sub.add_parser("place", help="place an order and start its payment job")
    p.add_argument("--db", required=True)
    p.add_argument(
        "--tm", default=None, help="the TM (default: $STEPPING_TM_ADDRESS, else 127.0.0.1:36790)"
    )
    p.add_argument("--orders", default="127.0.0.1:50060", help="the serve process")
    p.add_argument("--bank-a", default="127.0.0.1:50061", help="the buyer's bank")
    p.add_argument("--bank-b", default="127.0.0.1:50062", help="the seller's bank")
    p.add_argument("--buyer", default="alice")
    p.add_argument("--seller", default="bob")
    p.add_argument("--amount", type=int, default=30)
    p.add_argument("--wait", action="store_true", help="wait until the job ends")
    args = parser.parse_args()
    asyncio.run(serve(args) if args.command == "serve" else place(args))


if __name__ == "__main__":
    main()
