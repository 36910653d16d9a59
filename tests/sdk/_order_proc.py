"""The example order service placing one order, frozen at a chosen point so that a test
can SIGKILL it there. Not a test switch in the SDK: the freeze points are an engine
event (before COMMIT is sent) and a client interceptor (before Submit is sent).

    python tests/sdk/_order_proc.py --freeze before-commit|before-submit --tm ... --db ...
        --orders QUERY_PREPARED_TARGET --bank-a ... --bank-b ... --amount N

Prints ``PREPARED <gid>`` once the TM stored the job, then ``FROZEN <point>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "python"))

import orders

from participant_sdk import Endpoint, TmClient


class _Freeze(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    def __init__(self, before_submit: bool) -> None:
        self._before_submit = before_submit

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method.endswith("/Submit") and self._before_submit:
            print("FROZEN before-submit", flush=True)
            await asyncio.sleep(3600)
        call = await continuation(details, request)
        if method.endswith("/Prepare"):
            await call
            print(f"PREPARED {request.gid}", flush=True)
        return call


def _freeze_before_commit(_conn: Any) -> None:
    # Runs inside the COMMIT, before it is sent: block the whole process right there.
    print("FROZEN before-commit", flush=True)
    time.sleep(3600)


async def main() -> None:
    p = argparse.ArgumentParser()
    for flag in ("--freeze", "--tm", "--db", "--orders", "--bank-a", "--bank-b"):
        p.add_argument(flag, required=True)
    p.add_argument("--amount", type=int, required=True)
    p.add_argument("--check-prepared-after", type=float, default=0.5)
    args = p.parse_args()

    engine = create_async_engine(args.db)
    if args.freeze == "before-commit":
        event.listen(engine.sync_engine, "commit", _freeze_before_commit)
    async with TmClient.connect(
        args.tm,
        query_prepared=Endpoint.query_prepared(args.orders),
        interceptors=[_Freeze(args.freeze == "before-submit")],  # type: ignore[list-item]
    ) as tm:
        await orders.place_order(
            tm,
            engine,
            orders.Order("alice", "bob", args.amount),
            bank_a=args.bank_a,
            bank_b=args.bank_b,
            check_prepared_after=timedelta(seconds=args.check_prepared_after),
        )
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
