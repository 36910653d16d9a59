"""SyncTmClient from plain blocking code (run in a thread here, as a Flask/Django worker
would): typed jobs, wait() raising, and job.start(conn) inside a sync transaction."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import bank as bank_example
import pytest
import sqlalchemy as sa

from participant_sdk import (
    Endpoint,
    JobAborted,
    JobFailed,
    ParticipantServer,
    RetryPolicy,
    SyncTmClient,
)
from participant_sdk.client import JobState, JobStatus
from tests.sdk._sync_bank import sync_url
from tests.sdk.conftest import Banks
from tm_service import TmServer

FAST = RetryPolicy(initial_interval=0.1, backoff_coefficient=1.0, maximum_interval=0.2)
Transfer = bank_example.Transfer
debit = bank_example.Bank.debit.__get__(object())
credit = bank_example.Bank.credit.__get__(object())

orders = sa.Table("orders", sa.MetaData(), sa.Column("id", sa.Text, primary_key=True))


async def test_sync_client_runs_jobs_and_starts_them_in_a_sync_transaction(
    tm: TmServer, banks: Banks
) -> None:
    engine = sa.create_engine(sync_url(banks.db_a.url.render_as_string(hide_password=False)))
    orders.create(engine)
    async with ParticipantServer(databases=banks.db_a, host="127.0.0.1") as back_check:

        def blocking_code() -> tuple[JobStatus, str, str]:
            with SyncTmClient.connect(
                tm.target, timeout=5, query_prepared=back_check.query_prepared_endpoint
            ) as client:
                job = client.job(retry_policy=FAST)
                job.add_step(debit, Transfer("alice", 30), target=banks.a)
                job.add_step(credit, Transfer("bob", 30), target=banks.b)
                with engine.connect() as conn:
                    conn.begin()
                    conn.execute(orders.insert().values(id="o-1"))
                    job.start(conn)  # Prepare → barrier row → COMMIT → Submit
                done = job.wait(timeout=30).status

                failing = client.job(retry_policy=FAST)
                failing.add_step(credit, Transfer("carol", 1), target=banks.b)
                failing.start()
                with pytest.raises(JobFailed) as failed:
                    failing.wait(timeout=30)
                assert client.get(failing.gid).status is JobStatus.FAILED
                return done, failed.value.step_name or "", failed.value.error

        status, step_name, error = await asyncio.to_thread(blocking_code)
    assert status is JobStatus.SUCCEEDED
    assert (step_name, "no account 'carol'" in error) == ("Credit", True)
    assert await banks.balances() == (70, 30)
    with engine.connect() as conn:
        assert conn.scalars(sa.select(orders.c.id)).all() == ["o-1"]
    engine.dispose()


async def test_sync_two_phase_rollback_aborts_and_runs_no_step(tm: TmServer, banks: Banks) -> None:
    """The local transaction does not commit: a refused COMMIT aborts the job at once;
    a COMMIT whose outcome is unknown (the connection dies in it) is settled by the
    TM's back-check, which finds the barrier row rolled back."""
    url = sync_url(banks.db_a.url.render_as_string(hide_password=False))
    engine, admin = sa.create_engine(url), sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE coupons (code text, UNIQUE (code) DEFERRABLE INITIALLY DEFERRED)")
        )
    async with ParticipantServer(databases=banks.db_a, host="127.0.0.1") as back_check:

        def blocking_code() -> tuple[JobState, JobState]:
            with SyncTmClient.connect(
                tm.target, timeout=5, query_prepared=back_check.query_prepared_endpoint
            ) as client:
                refused = client.job(retry_policy=FAST, check_prepared_after=timedelta(seconds=60))
                refused.add_step(debit, Transfer("alice", 30), target=banks.a)
                with engine.connect() as conn:
                    conn.begin()
                    conn.execute(sa.text("INSERT INTO coupons VALUES ('X'), ('X')"))
                    with pytest.raises(sa.exc.IntegrityError):
                        refused.start(conn)  # the deferred constraint fails the COMMIT

                unknown = client.job(retry_policy=FAST, check_prepared_after=timedelta(seconds=0.5))
                unknown.add_step(debit, Transfer("alice", 30), target=banks.a)
                with engine.connect() as conn:
                    conn.begin()
                    pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()

                    def die_in_commit(_: sa.Connection) -> None:
                        time.sleep(1.0)  # the back-check is due, and waits on the row
                        with admin.connect() as other:
                            other.execute(sa.text(f"SELECT pg_terminate_backend({pid})"))

                    sa.event.listen(conn, "commit", die_in_commit)
                    with pytest.raises(sa.exc.DBAPIError):
                        unknown.start(conn)
                with pytest.raises(JobAborted):
                    unknown.wait(timeout=30)
                return client.get(refused.gid), client.get(unknown.gid)

        refused_state, unknown_state = await asyncio.to_thread(blocking_code)
    assert refused_state.status is JobStatus.ABORTED
    assert "local commit failed" in refused_state.error
    assert unknown_state.status is JobStatus.ABORTED
    assert "did not commit" in unknown_state.error  # the back-check's verdict
    assert [s.attempts for s in (*refused_state.steps, *unknown_state.steps)] == [0, 0]
    assert await banks.balances() == (100, 0)
    engine.dispose()
    admin.dispose()


async def test_sync_watch_streams_each_change_as_it_happens(tm: TmServer) -> None:
    def blocking_code() -> list[JobStatus]:
        with SyncTmClient.connect(tm.target, timeout=5) as client:
            job = client.job(retry_policy=FAST)
            job.add_step(Endpoint.for_step("127.0.0.1:9", "bank.v1.Bank", "Debit"), b"{}")
            job.start()  # nothing listens there: retried until cancelled
            seen = []
            for state in client.watch(job.gid):  # the first state comes before the end
                seen.append(state.status)
                if state.status is JobStatus.SUBMITTED and len(seen) == 1:
                    client.cancel(job.gid, reason="test")
            return seen

    seen = await asyncio.to_thread(blocking_code)
    assert seen[0] is JobStatus.SUBMITTED and seen[-1] is JobStatus.FAILED
