"""Faults a user will meet, on real TM processes: a step longer than the lease, the
database cut off mid-RPC (through a TCP proxy), a TM started before its database, a
bad database URL."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url
from stepping.contract import TM_SERVICE
from stepping.tm.v1 import tm_pb2 as S

from tests.e2e.conftest import SpawnTm, TmProcess
from tests.e2e.tcp_proxy import TcpProxy
from tests.integration.helpers import dur, gid, step, tm_stub
from tests.integration.participant import Participant
from tm_service.server import LIVENESS_NAME

pytestmark = pytest.mark.e2e

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


@pytest_asyncio.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(pg_url)
    p = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield p
    await p.close()


def through(proxy: TcpProxy, database_url: str) -> str:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


async def health(target: str, names: tuple[str, ...] = ("", TM_SERVICE)) -> dict[str, int]:
    """The health of "" and the TM service (-1: no answer)."""
    out: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in names:
            try:
                out[name] = (
                    await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                ).status
            except grpc.aio.AioRpcError:
                out[name] = -1
    return out


async def wait_health(tm: TmProcess, status: int, timeout: float) -> float:
    """Seconds until both health names report ``status``."""
    started = time.monotonic()
    while True:
        seen = await health(tm.target)
        if set(seen.values()) == {status}:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"health {seen}, wanted {status}:\n{tm.log_text()}")
        await asyncio.sleep(0.1)


async def wait_succeeded(target: str, g: str, timeout: float) -> S.Transaction:
    """Poll the job until SUCCEEDED, riding out UNAVAILABLE answers meanwhile."""
    deadline = time.monotonic() + timeout
    async with tm_stub(target) as stub:
        while True:
            try:
                tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=g))).transaction
                if tx.status == S.TRANSACTION_STATUS_SUCCEEDED:
                    return tx
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err
            assert time.monotonic() < deadline, f"{g} not SUCCEEDED in {timeout}s"
            await asyncio.sleep(0.1)


def assert_one_line_logs(tm: TmProcess) -> None:
    text = tm.log_text()
    assert "Traceback" not in text, text
    strays = [line for line in text.splitlines() if line and not _LOG_LINE.match(line)]
    assert not strays, text


async def test_a_step_twice_the_lease_on_two_replicas_is_delivered_once(
    spawn_tm: SpawnTm, database_url: str, participant: Participant
) -> None:
    method = "/e2e.v1.Slow/Long"
    participant.delays[method] = 6.5  # more than twice the 3 s lease
    a, b = await asyncio.gather(
        spawn_tm(database_url, lease_seconds=3), spawn_tm(database_url, lease_seconds=3)
    )
    g = gid()
    async with tm_stub(a.target) as stub:
        await stub.Submit(
            S.SubmitRequest(
                gid=g, steps=[step(participant.target, method, b"once", timeout=dur(20))]
            )
        )
    tx = await wait_succeeded(b.target, g, timeout=40)
    assert tx.steps[0].status == S.STEP_STATUS_SUCCEEDED
    assert len(participant.calls_to(method)) == 1  # b never took the job over
    assert "lease lost" not in a.log_text() + b.log_text()


async def test_a_database_cut_mid_rpc_is_unavailable_then_the_tm_recovers(
    spawn_tm: SpawnTm, database_url: str, participant: Participant, proxy: TcpProxy
) -> None:
    method = "/e2e.v1.Steps/Do"
    participant.delays[method] = 1.5
    await proxy.start()
    tm = await spawn_tm(through(proxy, database_url), poll_interval_seconds=0.5)
    assert set((await health(tm.target)).values()) == {SERVING}
    in_flight = gid()
    async with tm_stub(tm.target) as stub:
        waiting = asyncio.ensure_future(
            stub.Submit(
                S.SubmitRequest(
                    gid=in_flight,
                    steps=[step(participant.target, method, b"a", timeout=dur(10))],
                    wait_result=True,
                    wait_timeout=dur(4),
                ),
                timeout=30,
            )
        )
        deadline = time.monotonic() + 20
        while not participant.calls:  # the step call is in flight
            assert time.monotonic() < deadline and not waiting.done()
            await asyncio.sleep(0.02)
        await proxy.cut()
        cut_at = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as mid:
            await waiting
        assert mid.value.code() == grpc.StatusCode.UNAVAILABLE, mid.value

        took = await wait_health(tm, NOT_SERVING, timeout=10)
        assert await health(tm.target, (LIVENESS_NAME,)) == {LIVENESS_NAME: SERVING}
        assert time.monotonic() - cut_at < 8, "NOT_SERVING within a couple of seconds"
        assert took < 3

        during = gid()
        request = S.SubmitRequest(
            gid=during, steps=[step(participant.target, method, b"b", timeout=dur(10))]
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Submit(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value

        await proxy.restore()
        await wait_health(tm, SERVING, timeout=15)
        await stub.Submit(request, timeout=30)  # the client's retry
    await wait_succeeded(tm.target, in_flight, timeout=30)
    await wait_succeeded(tm.target, during, timeout=30)
    log = tm.log_text()
    assert "database unreachable; health NOT_SERVING" in log
    assert "database reachable again; health SERVING" in log
    assert_one_line_logs(tm)


async def test_a_tm_started_before_its_database_waits_then_migrates_and_serves(
    spawn_tm: SpawnTm,
    make_database: Callable[..., Awaitable[str]],
    participant: Participant,
    proxy: TcpProxy,
) -> None:
    database_url = await make_database(migrated=False)
    await proxy.start(listening=False)  # nothing answers on the database's port yet
    tm = await spawn_tm(through(proxy, database_url), ready=False)
    assert set((await health(tm.target)).values()) == {NOT_SERVING}
    # ... while the process is alive: liveness probes must not restart it meanwhile.
    assert await health(tm.target, (LIVENESS_NAME,)) == {LIVENESS_NAME: SERVING}
    async with tm_stub(tm.target) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as early:
            await stub.Submit(
                S.SubmitRequest(gid=gid(), steps=[step(participant.target, "/e2e.v1.A/B")]),
                timeout=30,
            )
    assert early.value.code() == grpc.StatusCode.UNAVAILABLE, early.value
    deadline = time.monotonic() + 30
    while tm.log_text().count("waiting for the database") < 3:
        assert time.monotonic() < deadline, tm.log_text()
        await asyncio.sleep(0.1)

    await proxy.restore()
    await wait_health(tm, SERVING, timeout=30)
    g = gid()
    async with tm_stub(tm.target) as stub:
        done = await stub.Submit(
            S.SubmitRequest(
                gid=g, steps=[step(participant.target, "/e2e.v1.A/B")], wait_result=True
            ),
            timeout=30,
        )
    assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED  # the schema was made
    waits = [line for line in tm.log_text().splitlines() if "waiting for the database" in line]
    assert all("ConnectionRefusedError" in line for line in waits), waits
    assert_one_line_logs(tm)


async def test_sigterm_while_waiting_for_the_database_exits_cleanly(
    spawn_tm: SpawnTm, database_url: str, proxy: TcpProxy
) -> None:
    await proxy.start(listening=False)
    tm = await spawn_tm(through(proxy, database_url), ready=False)
    tm.terminate()
    assert await tm.wait_exit(20) == 0
    assert_one_line_logs(tm)


def test_a_bad_database_url_fails_at_once_with_one_line() -> None:
    urls = ["mysql://tm:secret@db.example:3306/tm", "postgresql://tm:secret@db.example:port/tm"]
    started = time.monotonic()
    procs = [  # both at once: a process start is slow on a loaded machine
        subprocess.Popen(
            [sys.executable, "-m", "tm_service", "serve", "--database-url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode != 0
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert "STEPPING_DATABASE_URL" in lines[0]
        assert "secret" not in lines[0]  # the URL (and its password) is not echoed
    assert time.monotonic() - started < 60  # no waiting: a retry cannot fix it


def test_db_upgrade_waits_a_bounded_time_then_fails_with_the_reason() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "tm_service", "db", "upgrade"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "STEPPING_DATABASE_URL": f"postgresql://tm@127.0.0.1:{port}/tm",
            "STEPPING_DB_WAIT_SECONDS": "2",
        },
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) >= 3, done.stderr  # one per attempt ...
    assert all("waiting for the database" in line for line in lines[:-1]), done.stderr
    assert lines[-1].startswith("stepping-tm: gave up after 2s waiting for the database")
    assert "Traceback" not in done.stderr
