"""Waiting for the database at start, and health following it afterwards (virtual time)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fakes import FakeClock
from tm_service._db_health import DatabaseWatch, wait_for_database
from tm_service.errors import StoreUnavailable


class FakeDatabase:
    def __init__(self, *, down: bool) -> None:
        self.down = down
        self.pings = 0
        self.migrations = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise StoreUnavailable("database unavailable: ConnectionRefusedError: refused")

    async def migrate(self, revision: str = "head") -> None:
        assert not self.down
        self.migrations += 1


async def _later(clock: FakeClock, seconds: float, fn: object) -> None:
    await clock.wait(asyncio.Event(), seconds)
    fn()  # type: ignore[operator]


async def test_start_waits_with_capped_backoff_one_line_per_attempt_then_migrates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, db = FakeClock(), FakeDatabase(down=True)
    caplog.set_level(logging.INFO, logger="tm_service._db_health")
    up = asyncio.create_task(_later(clock, 20.0, lambda: setattr(db, "down", False)))
    await wait_for_database(db, migrate=True, clock=clock)
    await up
    assert clock.waited[1:8] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]  # [0] is the outage timer
    assert db.migrations == 1
    waits = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(waits) == db.pings - 1  # one line per failed attempt ...
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in waits)  # ... one line
    assert "ConnectionRefusedError" in waits[0].getMessage()


async def test_a_bounded_wait_gives_up_with_the_reason() -> None:
    clock, db = FakeClock(), FakeDatabase(down=True)
    with pytest.raises(StoreUnavailable, match=r"gave up after 10s.*ConnectionRefusedError"):
        await wait_for_database(db, migrate=True, timeout=10.0, clock=clock)
    assert clock.elapsed == 10.0  # the last attempt at the deadline
    assert db.migrations == 0


async def test_health_flips_at_once_on_a_failed_operation_and_comes_back_by_itself() -> None:
    clock, db = FakeClock(), FakeDatabase(down=False)
    reports: list[tuple[bool, float]] = []

    async def report(serving: bool) -> None:
        reports.append((serving, clock.elapsed))

    watch = DatabaseWatch(db, report, interval=1.0, clock=clock)
    watch.start()
    await clock.wait(asyncio.Event(), 2.5)
    assert reports == []  # pings succeed: nothing to report

    db.down = True
    watch.notice(StoreUnavailable("database unavailable: test outage"))
    await clock.wait(asyncio.Event(), 0.0001)
    assert reports == [(False, 2.5)]  # before the next ping was due

    pings = db.pings
    for _ in range(30):  # requests keep failing for 3 s: no ping storm
        watch.notice(StoreUnavailable("database unavailable: test outage"))
        await clock.wait(asyncio.Event(), 0.1)
    assert db.pings - pings <= 4

    db.down = False
    back = clock.elapsed
    await clock.wait(asyncio.Event(), 1.5)
    assert [s for s, _ in reports] == [False, True]
    assert reports[1][1] - back <= 1.0  # SERVING again within one interval
    await watch.stop()


async def test_the_watch_notices_an_outage_without_any_request() -> None:
    clock, db = FakeClock(), FakeDatabase(down=False)
    reports: list[bool] = []

    async def report(serving: bool) -> None:
        reports.append(serving)

    watch = DatabaseWatch(db, report, interval=1.0, clock=clock)
    watch.start()
    await clock.wait(asyncio.Event(), 1.5)
    db.down = True
    await clock.wait(asyncio.Event(), 1.0)
    assert reports == [False]
    await watch.stop()
