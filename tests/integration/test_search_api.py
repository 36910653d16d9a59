"""Tags, List filters, CountTransactions, PurgeTransactions and retention on a real TM."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from stepping.tm.v1 import tm_pb2 as S

from tests.conftest import test_settings as settings_for
from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub
from tests.integration.participant import FakeAnswer, Participant
from tm_service import TmServer

StartTm = Callable[..., Awaitable[TmServer]]


@pytest_asyncio.fixture
async def start_tm(database_url: str) -> AsyncIterator[StartTm]:
    started: list[TmServer] = []

    async def start(**overrides: Any) -> TmServer:
        server = TmServer(settings_for(database_url, **overrides))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(grace=1.0)


def _field(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            return str(bad.field_violations[0].field)
    raise AssertionError(f"no BadRequest in {err.details()}")


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _backdate(database_url: str, gids: list[str], seconds: float) -> None:
    conn = await asyncpg.connect(_plain(database_url))
    try:
        await conn.execute(
            "UPDATE stepping_transactions SET finish_time = finish_time - $2 * interval '1 second'"
            " WHERE gid = ANY($1)",
            gids,
            seconds,
        )
    finally:
        await conn.close()


async def _submit(
    stub: Any, target: str, *, tags: dict[str, str] | None = None, method: str = "/a.v1.A/Do"
) -> str:
    g = gid()
    await stub.Submit(
        S.SubmitRequest(
            gid=g,
            steps=[step(target, method)],
            options=S.TransactionOptions(retry_policy=fast_retry(attempts=1)),
            tags=tags or {},
            wait_result=True,
        )
    )
    return g


async def test_tags_are_validated_returned_and_part_of_the_fingerprint(
    tm: TmServer, participant: Participant
) -> None:
    async with tm_stub(tm.target) as stub:
        g = await _submit(stub, participant.target, tags={"order_id": "123"})
        tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
        assert dict(tx.tags) == {"order_id": "123"}
        again = S.SubmitRequest(
            gid=g,
            steps=[step(participant.target, "/a.v1.A/Do")],
            tags={"order_id": "123"},
            options=S.TransactionOptions(retry_policy=fast_retry(attempts=1)),
        )
        assert (await stub.Submit(again)).transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
        again.tags["order_id"] = "124"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Submit(again)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        bad_cases: list[tuple[dict[str, str], str]] = [
            ({"order id": "1"}, 'tags["order id"]'),
            ({"": "1"}, 'tags[""]'),
            ({"k": "x" * 257}, 'tags["k"]'),
            ({"k": "a\nb"}, 'tags["k"]'),
            ({f"k{i}": "v" for i in range(17)}, "tags"),
            ({f"k{i}": "v" * 256 for i in range(16)}, "tags"),
        ]
        for tags, field in bad_cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _submit(stub, participant.target, tags=tags)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _field(err.value) == field, err.value.details()


async def test_list_and_count_filter_through_the_api(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail("/a.v1.A/Bad", FakeAnswer(grpc.StatusCode.INTERNAL, "Disk Full on node-7"))
    async with tm_stub(tm.target) as stub:
        ok = await _submit(stub, participant.target, tags={"order_id": "7", "shop": "x"})
        bad = await _submit(stub, participant.target, tags={"shop": "x"}, method="/a.v1.A/Bad")
        other = await _submit(stub, participant.target)

        async def listed(f: S.TransactionFilter, statuses: Sequence[Any] = ()) -> list[str]:
            resp = await stub.ListTransactions(
                S.ListTransactionsRequest(filter=f, statuses=statuses)
            )
            return [t.gid for t in resp.transactions]

        assert await listed(S.TransactionFilter(tags={"shop": "x"})) == [bad, ok]
        assert await listed(S.TransactionFilter(tags={"order_id": "7"})) == [ok]
        assert await listed(S.TransactionFilter(error_contains="disk full")) == [bad]
        assert await listed(S.TransactionFilter(method="/a.v1.A/Bad")) == [bad]
        assert await listed(S.TransactionFilter(target=participant.target)) == [other, bad, ok]
        assert await listed(S.TransactionFilter(gid_prefix=ok)) == [ok]
        failed = [S.TRANSACTION_STATUS_FAILED]
        assert await listed(S.TransactionFilter(tags={"shop": "x"}), failed) == [bad]
        counts = await stub.CountTransactions(
            S.CountTransactionsRequest(filter=S.TransactionFilter(tags={"shop": "x"}))
        )
        assert {c.status: c.count for c in counts.counts} == {
            S.TRANSACTION_STATUS_SUCCEEDED: 1,
            S.TRANSACTION_STATUS_FAILED: 1,
        }
        assert counts.total == 2
        assert not counts.capped
        capped = await stub.CountTransactions(
            S.CountTransactionsRequest(filter=S.TransactionFilter(tags={"shop": "x"}), at_most=1)
        )
        assert capped.capped is False  # one of each status: at_most not passed
        assert [c.capped for c in capped.counts] == [False, False]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CountTransactions(S.CountTransactionsRequest(at_most=-1))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "at_most" in (refused.value.details() or "")
        invalid: list[tuple[S.TransactionFilter, str]] = [
            (S.TransactionFilter(tags={"bad key": "1"}), 'filter.tags["bad key"]'),
            (S.TransactionFilter(gid_prefix="a b"), "filter.gid_prefix"),
            (S.TransactionFilter(target="nohost"), "filter.target"),
            (S.TransactionFilter(method="Do"), "filter.method"),
            (S.TransactionFilter(error_contains="x" * 300), "filter.error_contains"),
            (S.TransactionFilter(mode=9), "filter.mode"),  # type: ignore[arg-type]
        ]
        window = S.TransactionFilter()
        window.created_after.FromSeconds(2000)
        window.created_before.FromSeconds(1000)
        invalid.append((window, "filter.created_before"))
        for f, field in invalid:
            for call in (
                stub.ListTransactions(S.ListTransactionsRequest(filter=f)),
                stub.CountTransactions(S.CountTransactionsRequest(filter=f)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert _field(err.value) == field, err.value.details()


async def test_purge_deletes_old_finished_jobs_only(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    async with tm_stub(tm.target) as stub:
        old = [await _submit(stub, participant.target) for _ in range(3)]
        young = await _submit(stub, participant.target)
        await _backdate(database_url, old, 7200)
        older = S.PurgeTransactionsRequest(older_than=dur(3600), dry_run=True)
        assert (await stub.PurgeTransactions(older)).deleted == 3
        older.statuses.append(S.TRANSACTION_STATUS_FAILED)
        assert (await stub.PurgeTransactions(older)).deleted == 0
        real = S.PurgeTransactionsRequest(older_than=dur(3600))
        assert (await stub.PurgeTransactions(real)).deleted == 3
        left = await stub.ListTransactions(S.ListTransactionsRequest())
        assert [t.gid for t in left.transactions] == [young]
        for request, field in (
            (S.PurgeTransactionsRequest(), "older_than"),
            (S.PurgeTransactionsRequest(older_than=dur(0)), "older_than"),
            (
                S.PurgeTransactionsRequest(
                    older_than=dur(60), statuses=[S.TRANSACTION_STATUS_SUBMITTED]
                ),
                "statuses[0]",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.PurgeTransactions(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _field(err.value) == field


async def test_purge_is_for_admins_and_counts_are_scoped(
    start_tm: StartTm, participant: Participant, tmp_path: Path
) -> None:
    tokens = {"orders": "client", "audit": "reader", "root": "admin"}
    auth = tmp_path / "auth.toml"
    auth.write_text(
        "\n".join(
            f'[[principal]]\nname = "{n}"\nroles = ["{r}"]\n'
            f'token_sha256 = ["{hashlib.sha256(("t-" + n).encode()).hexdigest()}"]\n'
            for n, r in tokens.items()
        )
    )
    tm = await start_tm(auth_file=str(auth))

    def md(name: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer t-{name}"),)

    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[step(participant.target, "/a.v1.A/Do")], wait_result=True
            ),
            metadata=md("orders"),
        )
        await stub.Submit(
            S.SubmitRequest(
                gid=gid(), steps=[step(participant.target, "/a.v1.A/Do")], wait_result=True
            ),
            metadata=md("root"),
        )
        count = S.CountTransactionsRequest()
        assert (await stub.CountTransactions(count, metadata=md("orders"))).total == 1
        assert (await stub.CountTransactions(count, metadata=md("audit"))).total == 2
        purge = S.PurgeTransactionsRequest(older_than=dur(3600), dry_run=True)
        for who in ("orders", "audit"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.PurgeTransactions(purge, metadata=md(who))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await stub.PurgeTransactions(purge, metadata=md("root"))).deleted == 0


async def test_retention_deletes_only_finished_jobs_past_the_limit(
    start_tm: StartTm, participant: Participant, database_url: str
) -> None:
    tm = await start_tm(retention_seconds=3600.0, retention_interval_seconds=0.2)
    participant.fail("/a.v1.A/Slow", *[FakeAnswer(grpc.StatusCode.UNAVAILABLE)] * 1000)
    async with tm_stub(tm.target) as stub:
        old = [await _submit(stub, participant.target) for _ in range(3)]
        young = await _submit(stub, participant.target)
        running = gid()
        await stub.Submit(
            S.SubmitRequest(
                gid=running,
                steps=[step(participant.target, "/a.v1.A/Slow")],
                options=S.TransactionOptions(retry_policy=fast_retry(initial=0.5, maximum=1.0)),
            )
        )
        await _backdate(database_url, [*old, young], 60)  # still within the limit
        await _backdate(database_url, old, 7200)
        deadline = time.monotonic() + 30
        while True:
            left = await stub.ListTransactions(S.ListTransactionsRequest())
            gids = {t.gid for t in left.transactions}
            if not gids & set(old) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert gids == {young, running}
