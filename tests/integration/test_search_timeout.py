"""A List or Count that runs too long is stopped in the database (issue 16: a search over
millions of finished rows must not run on after its caller gave up): DEADLINE_EXCEEDED
saying how to narrow it. The table is locked meanwhile, so the statement surely waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import grpc
import pytest
from stepping.tm.v1 import tm_pb2

from tests.integration.helpers import tm_stub
from tm_service import TmServer

S = tm_pb2


@pytest.fixture
def tm_settings_overrides() -> dict[str, Any]:
    return {"search_timeout_seconds": 0.3}


async def test_a_search_past_the_timeout_is_stopped_with_a_hint(
    tm: TmServer, database_url: str
) -> None:
    locker = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with tm_stub(tm.target) as stub:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE stepping_transactions IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            calls = (
                stub.ListTransactions(S.ListTransactionsRequest(page_size=10), timeout=10),
                stub.CountTransactions(S.CountTransactionsRequest(), timeout=10),
            )
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert "narrow it" in (err.value.details() or "")
                assert "STEPPING_SEARCH_TIMEOUT_SECONDS" in (err.value.details() or "")
            assert time.monotonic() - started < 5  # stopped at ~0.3 s each, not at 10 s
            await tx.rollback()
            # The lock gone, the same calls answer (and nothing was left half-open).
            listed = await stub.ListTransactions(S.ListTransactionsRequest(page_size=10))
            assert list(listed.transactions) == []
            await stub.CountTransactions(S.CountTransactionsRequest())
    finally:
        await asyncio.wait_for(locker.close(), 5)
