"""The CLI as a user runs it, health/reflection, and the embedded Postgres default."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import inspect
from stepping.tm.v1 import tm_pb2 as S

from tests.conftest import test_settings as settings_for
from tests.e2e.conftest import SpawnTm
from tests.e2e.workers_pool import start_pool
from tests.integration.helpers import gid, step, tm_stub
from tests.integration.participant import Participant
from tm_service import TmServer
from tm_service.store import PostgresStore

pytestmark = pytest.mark.e2e


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tm_service",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_tx_list_and_show(tm: TmServer, participant: Participant) -> None:
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g,
                steps=[step(participant.target, "/a.v1.A/Do", name="reserve")],
                wait_result=True,
            )
        )
    code, out, _ = await _cli("tx", "show", g, "--target", tm.target)
    assert code == 0
    assert "SUCCEEDED" in out and "reserve" in out
    code, out, _ = await _cli("tx", "show", g, "--target", tm.target, "--json")
    assert code == 0 and json.loads(out)["status"] == "SUCCEEDED"
    code, out, _ = await _cli("tx", "list", "--status", "succeeded", "--target", tm.target)
    assert code == 0 and g in out and out.splitlines()[0].split()[:2] == ["GID", "STATUS"]
    code, out, _ = await _cli("tx", "list", "--json", "--status", "FAILED", "--target", tm.target)
    assert code == 0 and json.loads(out) == {}
    code, _, err = await _cli("tx", "show", "missing", "--target", tm.target)
    assert code == 1 and "NOT_FOUND" in err


async def test_health_and_reflection_when_turned_on(database_url: str) -> None:
    tm = TmServer(settings_for(database_url, reflection=True))
    await tm.start()
    try:
        await _health_and_reflection(tm)
    finally:
        await tm.stop(grace=1.0)


async def _health_and_reflection(tm: TmServer) -> None:
    async with grpc.aio.insecure_channel(tm.target) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "stepping.tm.v1.TransactionManagerService"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        services = [s.name async for a in answers for s in a.list_services_response.service]
    assert "stepping.tm.v1.TransactionManagerService" in services


async def test_db_upgrade_creates_the_schema(make_database: object) -> None:
    url = await make_database()  # type: ignore[operator]
    code, out, err = await _cli("db", "upgrade", "--database-url", url)
    assert code == 0, err
    assert "upgraded" in out
    store = PostgresStore.from_url(url, pool_size=1)
    try:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await store.close()
    assert {"stepping_transactions", "stepping_steps", "stepping_alembic_version"} <= set(tables)
    code, _, err = await _cli("db", "upgrade", "--database-url", url)  # idempotent
    assert code == 0, err


async def test_serve_without_database_url_uses_embedded_postgres(
    spawn_tm: SpawnTm, participant: Participant
) -> None:
    data = Path(tempfile.mkdtemp(prefix="stepping-embedded-", dir="/var/tmp"))
    try:
        tm = await spawn_tm("", embedded_pg_dir=str(data / "pg"))
        async with tm_stub(tm.target) as stub:
            tx = (
                await stub.Submit(
                    S.SubmitRequest(
                        gid=gid(), steps=[step(participant.target, "/a.v1.A/Do")], wait_result=True
                    )
                )
            ).transaction
        assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
        assert (data / "pg" / "PG_VERSION").exists()
        tm.terminate()
        assert await tm.wait_exit(20) == 0
        assert not (data / "pg" / "postmaster.pid").exists()  # stopped with the TM
    finally:
        shutil.rmtree(data, ignore_errors=True)


async def test_serve_workers_share_one_port(database_url: str, participant: Participant) -> None:
    import psutil

    proc, log, port = await start_pool(database_url, "--poll-interval-seconds", "0.1")
    try:
        assert log.read_text().count("listening on") == 2, log.read_text()
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2
        async with tm_stub(f"127.0.0.1:{port}") as stub:
            for _ in range(6):
                tx = (
                    await stub.Submit(
                        S.SubmitRequest(
                            gid=gid(),
                            steps=[step(participant.target, "/a.v1.A/Do")],
                            wait_result=True,
                        )
                    )
                ).transaction
                assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert not any(c.is_running() and c.status() != "zombie" for c in children)
    finally:
        if proc.returncode is None:
            proc.kill()
