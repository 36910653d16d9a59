"""SyncTmClient from plain blocking code (run in a thread here, as a Flask/Django worker
would): typed jobs, wait() raising, and job.start(conn) inside a sync transaction."""

from __future__ import annotations

import asyncio

import bank as bank_example
import pytest
import sqlalchemy as sa

from participant_sdk import JobFailed, ParticipantServer, RetryPolicy, SyncTmClient
from participant_sdk.client import JobStatus
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
