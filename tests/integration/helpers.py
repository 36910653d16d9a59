"""Small builders for TM requests and waiting on job states."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from google.protobuf.duration_pb2 import Duration
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc


def dur(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def gid() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def step(
    target: str, method: str, payload: bytes = b"", *, name: str = "", **kwargs: object
) -> tm_pb2.Step:
    return tm_pb2.Step(
        name=name,
        action=tm_pb2.Endpoint(target=target, method=method),
        payload=payload,
        **kwargs,  # type: ignore[arg-type]
    )


def fast_retry(
    initial: float = 0.05, backoff: float = 2.0, maximum: float = 1.0, attempts: int = 0
) -> tm_pb2.RetryPolicy:
    return tm_pb2.RetryPolicy(
        initial_interval=dur(initial),
        backoff_coefficient=backoff,
        maximum_interval=dur(maximum),
        maximum_attempts=attempts,
    )


@asynccontextmanager
async def tm_stub(target: str) -> AsyncIterator[tm_pb2_grpc.TransactionManagerServiceAsyncStub]:
    async with grpc.aio.insecure_channel(target) as channel:
        yield tm_pb2_grpc.TransactionManagerServiceStub(channel)


async def wait_status(
    stub: tm_pb2_grpc.TransactionManagerServiceAsyncStub,
    gid_: str,
    status: int,
    timeout: float = 10.0,
) -> tm_pb2.Transaction:
    deadline = time.monotonic() + timeout
    while True:
        tx = (await stub.GetTransaction(tm_pb2.GetTransactionRequest(gid=gid_))).transaction
        if tx.status == status:
            return tx
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{gid_} is {tm_pb2.TransactionStatus.Name(tx.status)}, "
                f"wanted {tm_pb2.TransactionStatus.Name(status)} (error={tx.error!r})"  # type: ignore[arg-type]
            )
        await asyncio.sleep(0.05)


def without_details(tx: tm_pb2.Transaction) -> tm_pb2.Transaction:
    """A GetTransaction answer as Submit/List answer it: without the details (issue 13)."""
    light = tm_pb2.Transaction()
    light.CopyFrom(tx)
    for name in (
        "options",
        "deadline_time",
        "trace_id",
        "query_prepared",
        "needs_attention",
        "query_prepared_history",
    ):
        light.ClearField(name)
    for st in light.steps:
        for name in (
            "payload",
            "headers",
            "action",
            "compensation",
            "retry_policy",
            "timeout",
            "history",
        ):
            st.ClearField(name)  # type: ignore[arg-type]
    return light
