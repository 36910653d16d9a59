"""The contract suite runs every test against both stores: in memory and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.fakes import FakeClock
from tm_service.store import InMemoryStore, JobStore, PostgresStore


@dataclass
class StoreUnderTest:
    store: JobStore
    # Let ``seconds`` of store time pass (the fake clock, or a real sleep for Postgres).
    advance: Callable[[float], Awaitable[None]]
    name: str


@pytest.fixture(params=["memory", "postgres"])
def store_database(request: pytest.FixtureRequest) -> str | None:
    """None for the in-memory store, else the URL of a fresh migrated database."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("database_url")
    return url


@pytest_asyncio.fixture
async def sut(store_database: str | None) -> AsyncIterator[StoreUnderTest]:
    if store_database is None:
        clock = FakeClock()

        async def jump(seconds: float) -> None:
            clock.advance(seconds)

        yield StoreUnderTest(InMemoryStore(clock), jump, "memory")
        return
    store = PostgresStore.from_url(store_database, pool_size=2)

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    try:
        yield StoreUnderTest(store, sleep, "postgres")
    finally:
        await store.close()
