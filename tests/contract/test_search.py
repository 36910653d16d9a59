"""The search contract (issue 13): List filters, counts, paging, purge, the exclusive lock.

Each test runs against both stores (``sut``). Jobs are made through the store's own
writes (insert, then a step outcome), as the engine makes them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import timedelta

from tests.contract.conftest import StoreUnderTest
from tm_service.domain import (
    Endpoint,
    Mode,
    NewTransaction,
    RetryPolicy,
    StepSpec,
    StepStatus,
    Transaction,
    TxOptions,
    TxStatus,
)
from tm_service.store import RETENTION_LOCK_KEY, JobStore, TxFilter

LEASE = 30.0
POLICY = RetryPolicy(0.1, 2.0, 1.0, 0)


def _new(
    gid: str,
    *,
    mode: Mode = Mode.MESSAGE,
    tags: Mapping[str, str] | None = None,
    target: str = "127.0.0.1:1",
    method: str = "/a.A/Do",
    comp: Endpoint | None = None,
) -> NewTransaction:
    spec = StepSpec(0, "s0", Endpoint(target, method), comp, b"p", {}, POLICY, 1.0)
    options = TxOptions(mode, 1.0, 10.0, None, concurrent=False)
    return NewTransaction(gid, (spec,), options, None, "", b"fp", tags=dict(tags or {}))


async def _make(
    store: JobStore,
    new: NewTransaction,
    *,
    finish: TxStatus | None = None,
    error: str = "",
    step_error: str = "",
) -> Transaction:
    """Store ``new`` as submitted; then finish it, or record a failed attempt."""
    made = await store.insert(new, status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)
    assert made is not None
    job, _ = made
    if finish is TxStatus.SUCCEEDED:
        await store.step_done(
            job, 0, status=StepStatus.SUCCEEDED, attempts=1, result=None, lease=LEASE, finish=finish
        )
    elif finish is TxStatus.FAILED:
        await store.step_failed(
            job,
            0,
            attempts=1,
            error=step_error,
            job_status=TxStatus.FAILED,
            job_error=error,
            lease=LEASE,
        )
    elif step_error:
        await store.step_attempt_failed(
            job, 0, attempts=1, error=step_error, delay=60.0, keep_lease=False, lease=LEASE
        )
    stored = await store.get(new.gid)
    assert stored is not None
    return stored.transaction


async def _insert(store: JobStore, new: NewTransaction) -> None:
    assert await store.insert(new, status=TxStatus.SUBMITTED, owner="r1", lease=LEASE)


async def _gids(store: JobStore, f: TxFilter) -> set[str]:
    txs = await store.list_transactions(statuses=(), limit=1000, before=None, filter=f)
    return {t.gid for t in txs}


def _uid() -> str:
    return uuid.uuid4().hex[:8]


async def test_tags_are_stored_and_returned(sut: StoreUnderTest) -> None:
    tx = await _make(sut.store, _new(f"t-{_uid()}", tags={"order_id": "123", "region": "eu"}))
    assert tx.tags == {"order_id": "123", "region": "eu"}
    listed = await sut.store.list_transactions(statuses=(), limit=10, before=None)
    assert listed[0].tags == {"order_id": "123", "region": "eu"}


async def test_each_filter_and_their_combination(sut: StoreUnderTest) -> None:
    s = sut.store
    u = _uid()
    comp = Endpoint("127.0.0.1:9", "/pay.Pay/Refund")
    a = await _make(
        s,
        _new(f"ord-{u}-a", tags={"order_id": "1", "region": "eu"}),
        finish=TxStatus.SUCCEEDED,
    )
    b = await _make(
        s,
        _new(f"ord-{u}-b", tags={"order_id": "2", "region": "eu"}, target="127.0.0.1:7"),
        finish=TxStatus.FAILED,
        error="Boom: 100% broken",
        step_error="connection REFUSED by peer",
    )
    c = await _make(
        s,
        _new(f"pay_{u}-c", mode=Mode.SAGA, method="/pay.Pay/Charge", comp=comp),
        step_error="deadline exceeded",
    )
    d = await _make(s, _new(f"payx{u}-d", tags={"region": "us"}))
    everyone = {a.gid, b.gid, c.gid, d.gid}
    assert everyone <= await _gids(s, TxFilter())
    assert await _gids(s, TxFilter(tags={"region": "eu"})) == {a.gid, b.gid}
    assert await _gids(s, TxFilter(tags={"region": "eu", "order_id": "1"})) == {a.gid}
    assert await _gids(s, TxFilter(tags={"region": "eu", "order_id": "3"})) == set()
    assert await _gids(s, TxFilter(gid_prefix=f"ord-{u}")) == {a.gid, b.gid}
    # "_" is no wildcard: pay_ does not match payx.
    assert await _gids(s, TxFilter(gid_prefix=f"pay_{u}")) == {c.gid}
    assert await _gids(s, TxFilter(target="127.0.0.1:7")) == {b.gid}
    assert await _gids(s, TxFilter(target="127.0.0.1:9")) == {c.gid}  # a compensation's
    assert await _gids(s, TxFilter(method="/pay.Pay/Charge")) == {c.gid}
    assert await _gids(s, TxFilter(method="/pay.Pay/Refund")) == {c.gid}
    assert await _gids(s, TxFilter(error_contains="refused")) == {b.gid}  # a step's, any case
    assert await _gids(s, TxFilter(error_contains="100% BROKEN")) == {b.gid}  # the job's
    assert await _gids(s, TxFilter(error_contains="0%")) == {b.gid}
    assert await _gids(s, TxFilter(error_contains="DEADLINE")) == {c.gid}
    assert await _gids(s, TxFilter(error_contains="_")) == set()  # literal, not a wildcard
    assert await _gids(s, TxFilter(mode=Mode.SAGA)) == {c.gid}
    assert await _gids(s, TxFilter(needs_attention=True)) == set()
    finished = TxFilter(finished_after=a.create_time)
    assert await _gids(s, finished) == {a.gid, b.gid}
    assert await _gids(s, TxFilter(created_after=b.create_time)) & everyone == {
        b.gid,
        c.gid,
        d.gid,
    }
    window = TxFilter(created_after=b.create_time, created_before=d.create_time)
    assert await _gids(s, window) == {b.gid, c.gid}
    assert b.finish_time is not None
    assert await _gids(s, TxFilter(finished_before=b.finish_time)) == {a.gid}
    both = TxFilter(statuses=(TxStatus.FAILED, TxStatus.SUBMITTED), tags={"region": "eu"})
    assert await _gids(s, both) == {b.gid}
    assert await _gids(s, TxFilter(statuses=(TxStatus.SUBMITTED,), mode=Mode.MESSAGE)) == {d.gid}
    assert await _gids(s, TxFilter(owner="nobody")) == set()


async def test_counts_per_status_follow_the_filter(sut: StoreUnderTest) -> None:
    s = sut.store
    u = _uid()
    for i in range(3):
        await _make(s, _new(f"c{u}-ok{i}", tags={"batch": u}), finish=TxStatus.SUCCEEDED)
    await _make(s, _new(f"c{u}-bad", tags={"batch": u}), finish=TxStatus.FAILED, error="x")
    await _make(s, _new(f"c{u}-run", tags={"batch": u}))
    await _make(s, _new(f"c{u}-other"), finish=TxStatus.SUCCEEDED)
    counts = await s.count_transactions(TxFilter(tags={"batch": u}))
    assert counts == {TxStatus.SUCCEEDED: 3, TxStatus.FAILED: 1, TxStatus.SUBMITTED: 1}
    assert await s.count_transactions(TxFilter(tags={"batch": u}, error_contains="x")) == {
        TxStatus.FAILED: 1
    }
    assert await s.count_transactions(TxFilter(tags={"batch": "none"})) == {}
    # Capped: each status counted up to at_most + 1 ("more"), the others exact.
    capped = await s.count_transactions(TxFilter(tags={"batch": u}), at_most=2)
    assert capped == {TxStatus.SUCCEEDED: 3, TxStatus.FAILED: 1, TxStatus.SUBMITTED: 1}
    capped = await s.count_transactions(TxFilter(tags={"batch": u}), at_most=1)
    assert capped == {TxStatus.SUCCEEDED: 2, TxStatus.FAILED: 1, TxStatus.SUBMITTED: 1}
    only = TxFilter(tags={"batch": u}, statuses=(TxStatus.SUCCEEDED,))
    assert await s.count_transactions(only, at_most=1) == {TxStatus.SUCCEEDED: 2}


async def test_paging_is_stable_while_jobs_are_inserted(sut: StoreUnderTest) -> None:
    s = sut.store
    u = _uid()
    n = 2000
    await asyncio.gather(*(_make(s, _new(f"p{u}-{i:05d}", tags={"run": u})) for i in range(n)))
    f = TxFilter(tags={"run": u}, statuses=(TxStatus.SUBMITTED,))
    seen: list[Transaction] = []
    before = None
    inserted = 0
    while True:
        page = await s.list_transactions(statuses=(), limit=97, before=before, filter=f)
        # New jobs land while paging: they are newer than every page, so never seen.
        await asyncio.gather(
            *(_insert(s, _new(f"p{u}-new{inserted + k}", tags={"run": u})) for k in range(20))
        )
        inserted += 20
        seen.extend(page)
        if len(page) < 97:
            break
        before = (page[-1].create_time, page[-1].gid)
    gids = [t.gid for t in seen]
    assert len(gids) == len(set(gids)) == n
    assert all("new" not in g for g in gids)
    keys = [(t.create_time, t.gid) for t in seen]
    assert keys == sorted(keys, reverse=True)
    total = await s.count_transactions(f)
    assert total == {TxStatus.SUBMITTED: n + inserted}


async def test_purge_deletes_only_old_finished_jobs(sut: StoreUnderTest) -> None:
    s = sut.store
    u = _uid()
    old_ok = [await _make(s, _new(f"o{u}-{i}"), finish=TxStatus.SUCCEEDED) for i in range(5)]
    old_bad = await _make(s, _new(f"o{u}-bad"), finish=TxStatus.FAILED, error="e")
    old_running = await _make(s, _new(f"o{u}-run"))
    await sut.advance(1.5)
    young = await _make(s, _new(f"y{u}"), finish=TxStatus.SUCCEEDED)
    assert await s.purge_finished(older_than=1.0, statuses=(), limit=0, dry_run=True) == 6
    only_failed = (TxStatus.FAILED,)
    assert await s.purge_finished(older_than=1.0, statuses=only_failed, limit=10) == 1
    assert await s.get(old_bad.gid) is None
    assert await s.purge_finished(older_than=1.0, statuses=(), limit=3) == 3  # a batch
    assert await s.purge_finished(older_than=1.0, statuses=(), limit=3) == 2
    assert await s.purge_finished(older_than=1.0, statuses=(), limit=3) == 0
    for t in old_ok:
        assert await s.get(t.gid) is None
    assert await s.get(old_running.gid) is not None  # not finished: never purged
    assert await s.get(young.gid) is not None  # finished, but recently
    txs = await s.list_transactions(statuses=(), limit=100, before=None)
    assert {t.gid for t in txs} == {old_running.gid, young.gid}


async def test_exclusive_is_held_by_one_at_a_time(sut: StoreUnderTest) -> None:
    s = sut.store
    async with s.exclusive(RETENTION_LOCK_KEY) as first:
        assert first
        async with s.exclusive(RETENTION_LOCK_KEY) as second:
            assert not second
    async with s.exclusive(RETENTION_LOCK_KEY) as again:
        assert again


async def test_created_ranges_are_half_open(sut: StoreUnderTest) -> None:
    s = sut.store
    u = _uid()
    a = await _make(s, _new(f"h{u}-a", tags={"h": u}))
    b = await _make(s, _new(f"h{u}-b", tags={"h": u}))
    exact = TxFilter(tags={"h": u}, created_after=a.create_time, created_before=b.create_time)
    assert await _gids(s, exact) == {a.gid}
    later = TxFilter(tags={"h": u}, created_after=b.create_time + timedelta(microseconds=1))
    assert await _gids(s, later) == set()
