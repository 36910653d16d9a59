"""TLS, mTLS and the auth file on a real TM (real certificates from a test CA, port 0)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from stepping.tm.v1 import tm_pb2 as S
from stepping.tm.v1 import tm_pb2_grpc

from participant_sdk import Endpoint, TLSConfig, TmClient
from participant_sdk.errors import PermissionDenied, Unauthenticated
from tests.certs import KeyPair, client_pair, server_pair
from tests.conftest import test_settings as settings_for
from tests.integration.helpers import gid, step
from tests.integration.participant import Participant
from tm_service import TmServer

ORDERS = "spiffe://prod/ns/orders/sa/orders"
TOKENS = {"orders": "t-orders", "billing": "t-billing", "audit": "t-audit", "root": "t-root"}
ROLES = {"orders": "client", "billing": "client", "audit": "reader", "root": "admin"}


def _auth_toml(tokens: dict[str, str], *, orders_identity: bool = True) -> str:
    out = []
    for name, token in tokens.items():
        sha = hashlib.sha256(token.encode()).hexdigest()
        out.append(
            f'[[principal]]\nname = "{name}"\nroles = ["{ROLES.get(name, "client")}"]\n'
            f'token_sha256 = ["{sha}"]\n'
        )
        if name == "orders" and orders_identity:
            out.append(f'tls_identities = ["{ORDERS}"]\n')
    return "\n".join(out)


@dataclass
class Pki:
    dir: Path
    ca: trustme.CA
    server_cert: Path
    server_key: Path
    ca_file: Path

    def client(self, name: str, **kwargs: Any) -> KeyPair:
        return client_pair(self.ca, **kwargs)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    cert, key = server_pair(ca).write(tmp_path, "server")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(tmp_path, ca, cert, key, ca_file)


StartTm = Callable[..., Awaitable[TmServer]]


@pytest_asyncio.fixture
async def start_tm(database_url: str) -> AsyncIterator[StartTm]:
    servers: list[TmServer] = []

    async def start(**overrides: Any) -> TmServer:
        server = TmServer(settings_for(database_url, **overrides))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(grace=1.0)


def _tls(
    pki: Pki, client: KeyPair | None = None, ca: bytes | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        ca or pki.ca.cert_pem.bytes(),
        client.key if client else None,
        client.cert if client else None,
    )


@asynccontextmanager
async def _stub(
    target: str, creds: grpc.ChannelCredentials | None = None
) -> AsyncIterator[tm_pb2_grpc.TransactionManagerServiceAsyncStub]:
    target = target.replace("127.0.0.1", "localhost") if creds else target
    channel = grpc.aio.secure_channel(target, creds) if creds else grpc.aio.insecure_channel(target)
    async with channel:
        yield tm_pb2_grpc.TransactionManagerServiceStub(channel)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _reason(err: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


async def _code(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


# -- TLS ------------------------------------------------------------------------------
async def test_tls_serves_encrypted_and_refuses_plaintext(start_tm: StartTm, pki: Pki) -> None:
    tm = await start_tm(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    async with _stub(tm.target, _tls(pki)) as stub:
        assert (await stub.NewGid(S.NewGidRequest(), timeout=5)).gid
    async with _stub(tm.target) as plain:
        assert (
            await _code(plain.NewGid(S.NewGidRequest(), timeout=2)) is grpc.StatusCode.UNAVAILABLE
        )
    other_ca = trustme.CA().cert_pem.bytes()  # a certificate the client does not trust
    async with _stub(tm.target, _tls(pki, ca=other_ca)) as stub:
        assert await _code(stub.NewGid(S.NewGidRequest(), timeout=2)) is grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate_from_the_ca(start_tm: StartTm, pki: Pki) -> None:
    tm = await start_tm(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca_file),
    )
    async with _stub(tm.target, _tls(pki, pki.client("c"))) as stub:
        assert (await stub.NewGid(S.NewGidRequest(), timeout=5)).gid
    async with _stub(tm.target, _tls(pki)) as stub:  # no client certificate
        assert await _code(stub.NewGid(S.NewGidRequest(), timeout=2)) is grpc.StatusCode.UNAVAILABLE
    stranger = client_pair(trustme.CA())  # signed by another CA
    async with _stub(tm.target, _tls(pki, stranger)) as stub:
        assert await _code(stub.NewGid(S.NewGidRequest(), timeout=2)) is grpc.StatusCode.UNAVAILABLE


async def test_a_rotated_certificate_is_served_without_a_restart(
    start_tm: StartTm, pki: Pki
) -> None:
    tm = await start_tm(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    new_ca = trustme.CA()
    rotated = server_pair(new_ca)
    # cert-manager writes the new pair in place; the next handshakes get it.
    pki.server_key.write_bytes(rotated.key)
    pki.server_cert.write_bytes(rotated.cert)
    st = pki.server_cert.stat()
    os.utime(pki.server_cert, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        await asyncio.sleep(0.3)
        async with _stub(tm.target, _tls(pki, ca=new_ca.cert_pem.bytes())) as stub:
            code = await _code(stub.NewGid(S.NewGidRequest(), timeout=2))
        if code is grpc.StatusCode.OK:
            break
        assert asyncio.get_running_loop().time() < deadline, code
    async with _stub(tm.target, _tls(pki)) as stub:  # the old CA no longer matches
        assert await _code(stub.NewGid(S.NewGidRequest(), timeout=2)) is grpc.StatusCode.UNAVAILABLE


async def test_the_health_only_listener_answers_in_plaintext(start_tm: StartTm, pki: Pki) -> None:
    tm = await start_tm(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        health_listen="127.0.0.1:0",
    )
    assert tm.health_port and tm.health_port != tm.port
    request = health_pb2.HealthCheckRequest(service="stepping.tm.v1.TransactionManagerService")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tm.health_port}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(request, timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        api = tm_pb2_grpc.TransactionManagerServiceStub(ch)  # only health is served there
        assert (
            await _code(api.NewGid(S.NewGidRequest(), timeout=2)) is grpc.StatusCode.UNIMPLEMENTED
        )
        # One health state for both ports: what the TM reports shows on this one too.
        await tm._health.set(request.service, health_pb2.HealthCheckResponse.NOT_SERVING)
        resp = await health_pb2_grpc.HealthStub(ch).Check(request, timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    async with grpc.aio.secure_channel(f"localhost:{tm.port}", _tls(pki)) as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(request, timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING


# -- tokens and roles -------------------------------------------------------------------
@pytest_asyncio.fixture
async def auth_tm(start_tm: StartTm, tmp_path: Path) -> TmServer:
    path = tmp_path / "auth.toml"
    path.write_text(_auth_toml(TOKENS))
    return await start_tm(auth_file=str(path))


async def test_tokens_none_or_wrong_are_unauthenticated_and_health_stays_open(
    auth_tm: TmServer,
) -> None:
    async with _stub(auth_tm.target) as stub:
        for metadata in [(), _bearer("nope"), (("authorization", "t-orders"),)]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.NewGid(S.NewGidRequest(), metadata=metadata)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert _reason(caught.value) == "ERROR_REASON_UNAUTHENTICATED"
        unauthenticated: list[Awaitable[object]] = [
            stub.GetTransaction(S.GetTransactionRequest(gid="x")),
            stub.ListTransactions(S.ListTransactionsRequest()),
            stub.Submit(S.SubmitRequest(gid="x")),  # refused before the request is looked at
        ]
        for call in unauthenticated:
            assert await _code(call) is grpc.StatusCode.UNAUTHENTICATED
        assert (await stub.NewGid(S.NewGidRequest(), metadata=_bearer("t-orders"))).gid
    async with grpc.aio.insecure_channel(auth_tm.target) as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [a async for a in answers]
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED  # reflection is off


async def _job(
    stub: tm_pb2_grpc.TransactionManagerServiceAsyncStub, token: str, participant: Participant
) -> str:
    g = gid()
    await stub.Submit(
        S.SubmitRequest(gid=g, steps=[step(participant.target, "/a.v1.A/Do")], wait_result=True),
        metadata=_bearer(token),
    )
    return g


async def _prepared(stub: tm_pb2_grpc.TransactionManagerServiceAsyncStub, token: str) -> str:
    g = gid()
    await stub.Prepare(
        S.PrepareRequest(
            gid=g,
            steps=[step("127.0.0.1:1", "/a.v1.A/Do")],
            query_prepared=S.Endpoint(target="127.0.0.1:1"),
        ),
        metadata=_bearer(token),
    )
    return g


async def test_a_client_sees_and_touches_only_its_own_jobs(
    auth_tm: TmServer, participant: Participant
) -> None:
    async with _stub(auth_tm.target) as stub:
        mine = await _job(stub, "t-orders", participant)
        theirs = await _job(stub, "t-billing", participant)
        their_prepared = await _prepared(stub, "t-billing")
        me = _bearer("t-orders")
        tx = (await stub.GetTransaction(S.GetTransactionRequest(gid=mine), metadata=me)).transaction
        assert tx.owner == "orders" and tx.status == S.TRANSACTION_STATUS_SUCCEEDED
        listed = await stub.ListTransactions(S.ListTransactionsRequest(), metadata=me)
        assert [t.gid for t in listed.transactions] == [mine]
        # Another's job and a gid nobody used get the same answer.
        answers: dict[str, set[str]] = {}
        for g in [theirs, their_prepared, "never-used"]:
            calls: dict[str, Awaitable[object]] = {
                "get": stub.GetTransaction(S.GetTransactionRequest(gid=g), metadata=me),
                "submit": stub.Submit(S.SubmitRequest(gid=g), metadata=me),
                "abort": stub.Abort(S.AbortRequest(gid=g), metadata=me),
                "cancel": stub.Cancel(S.CancelRequest(gid=g), metadata=me),
                "resume": stub.Resume(S.ResumeRequest(gid=g), metadata=me),
                "watch": stub.WatchTransaction(
                    S.WatchTransactionRequest(gid=g), metadata=me
                ).read(),
            }
            if g != "never-used":  # (with steps, a new gid is a new job of its own)
                calls["submit steps"] = stub.Submit(
                    S.SubmitRequest(gid=g, steps=[step(participant.target, "/a.v1.A/Do")]),
                    metadata=me,
                )
            for name, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                err = caught.value
                assert err.code() is grpc.StatusCode.PERMISSION_DENIED, (g, name, err.details())
                assert _reason(err) == "ERROR_REASON_PERMISSION_DENIED"
                answers.setdefault(name, set()).add((err.details() or "").replace(g, "<gid>"))
        assert all(len(words) == 1 for words in answers.values()), answers
        prepared = await stub.GetTransaction(
            S.GetTransactionRequest(gid=their_prepared), metadata=_bearer("t-billing")
        )
        assert prepared.transaction.status == S.TRANSACTION_STATUS_PREPARED  # untouched
        # Its own prepared job: submitted and aborted as before.
        own = await _prepared(stub, "t-orders")
        done = await stub.Abort(S.AbortRequest(gid=own), metadata=me)
        assert done.transaction.status == S.TRANSACTION_STATUS_ABORTED


async def test_a_reader_reads_every_job_but_cannot_change_any(
    auth_tm: TmServer, participant: Participant
) -> None:
    async with _stub(auth_tm.target) as stub:
        a = await _job(stub, "t-orders", participant)
        b = await _prepared(stub, "t-billing")
        audit = _bearer("t-audit")
        listed = await stub.ListTransactions(S.ListTransactionsRequest(), metadata=audit)
        assert {(t.gid, t.owner) for t in listed.transactions} == {(a, "orders"), (b, "billing")}
        got = await stub.GetTransaction(S.GetTransactionRequest(gid=b), metadata=audit)
        assert got.transaction.owner == "billing"
        missing = stub.GetTransaction(S.GetTransactionRequest(gid="never-used"), metadata=audit)
        assert await _code(missing) is grpc.StatusCode.NOT_FOUND
        denied: list[Awaitable[object]] = [
            stub.Submit(S.SubmitRequest(gid=b), metadata=audit),
            stub.Abort(S.AbortRequest(gid=b), metadata=audit),
            stub.NewGid(S.NewGidRequest(), metadata=audit),
            stub.Submit(
                S.SubmitRequest(gid=gid(), steps=[step(participant.target, "/a.v1.A/Do")]),
                metadata=audit,
            ),
        ]
        for call in denied:
            assert await _code(call) is grpc.StatusCode.PERMISSION_DENIED
        still = await stub.GetTransaction(S.GetTransactionRequest(gid=b), metadata=audit)
        assert still.transaction.status == S.TRANSACTION_STATUS_PREPARED


async def test_an_admin_may_abort_and_submit_any_job(
    auth_tm: TmServer, participant: Participant
) -> None:
    async with _stub(auth_tm.target) as stub:
        root = _bearer("t-root")
        b = await _prepared(stub, "t-billing")
        aborted = await stub.Abort(S.AbortRequest(gid=b, reason="ops"), metadata=root)
        assert aborted.transaction.status == S.TRANSACTION_STATUS_ABORTED
        assert aborted.transaction.owner == "billing"
        own = await _job(stub, "t-root", participant)
        listed = await stub.ListTransactions(S.ListTransactionsRequest(), metadata=root)
        assert {t.owner for t in listed.transactions} == {"billing", "root"}
        assert own in {t.gid for t in listed.transactions}


async def test_the_auth_file_is_reread_when_it_changes(start_tm: StartTm, tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(_auth_toml({"orders": "t-orders"}))
    tm = await start_tm(auth_file=str(path))
    async with _stub(tm.target) as stub:
        assert await _code(stub.NewGid(S.NewGidRequest(), metadata=_bearer("t-new"))) is (
            grpc.StatusCode.UNAUTHENTICATED
        )
        path.write_text(_auth_toml({"new": "t-new"}))
        await asyncio.sleep(1.2)
        assert (await stub.NewGid(S.NewGidRequest(), metadata=_bearer("t-new"))).gid
        assert await _code(stub.NewGid(S.NewGidRequest(), metadata=_bearer("t-orders"))) is (
            grpc.StatusCode.UNAUTHENTICATED  # its token was taken out
        )
        path.write_text("[[principal]\n")  # a broken edit changes nothing
        await asyncio.sleep(1.2)
        assert (await stub.NewGid(S.NewGidRequest(), metadata=_bearer("t-new"))).gid


# -- mTLS identities and the SDK -----------------------------------------------------
async def test_a_client_certificate_identity_maps_to_its_principal(
    start_tm: StartTm, pki: Pki, participant: Participant
) -> None:
    auth = pki.dir / "auth.toml"
    auth.write_text(_auth_toml(TOKENS))
    tm = await start_tm(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca_file),
        auth_file=str(auth),
    )
    orders = client_pair(pki.ca, uris=(ORDERS,), cn="orders-pod")
    async with _stub(tm.target, _tls(pki, orders)) as stub:
        g = gid()
        done = await stub.Submit(
            S.SubmitRequest(gid=g, steps=[step(participant.target, "/a.v1.A/Do")], wait_result=True)
        )
        assert done.transaction.owner == "orders"
        assert done.transaction.status == S.TRANSACTION_STATUS_SUCCEEDED
    unknown = client_pair(pki.ca, uris=("spiffe://prod/ns/x/sa/x",), dns=("x.example",))
    async with _stub(tm.target, _tls(pki, unknown)) as stub:
        code = await _code(stub.GetTransaction(S.GetTransactionRequest(gid=g)))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        # The same connection with a token: the token names the principal.
        got = await stub.GetTransaction(S.GetTransactionRequest(gid=g), metadata=_bearer("t-audit"))
        assert got.transaction.owner == "orders"


async def test_the_sdk_connects_with_tls_config_and_an_api_key(
    start_tm: StartTm, pki: Pki, participant: Participant
) -> None:
    auth = pki.dir / "auth.toml"
    auth.write_text(_auth_toml(TOKENS))
    tm = await start_tm(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca_file),
        auth_file=str(auth),
    )
    cert = client_pair(pki.ca, cn="some-pod")
    tls = TLSConfig(
        server_root_ca_cert=pki.ca.cert_pem.bytes(),
        domain="localhost",  # the target is an IP the certificate names too; check the override
        client_cert=cert.cert,
        client_private_key=cert.key,
    )
    target = f"127.0.0.1:{tm.port}"
    async with TmClient.connect(target, tls=tls, api_key="t-orders") as client:
        job = client.job()
        job.add_step(Endpoint(participant.target, "/a.v1.A/Do"), b"x")
        state = await job.start(wait=True)
        assert state.owner == "orders" and state.status.value == "SUCCEEDED"
        jobs, _ = await client.list_jobs()
        assert [j.gid for j in jobs] == [state.gid]
    async with TmClient.connect(target, tls=tls, api_key="t-billing") as other:
        with pytest.raises(PermissionDenied):
            await other.get(state.gid)
    with pytest.raises(Unauthenticated):
        await TmClient.connect(target, tls=tls)
    cert.write(pki.dir, "c")
    files = TLSConfig.from_files(
        ca=pki.ca_file, cert=pki.dir / "c.crt", key=pki.dir / "c.key", domain="localhost"
    )
    async with TmClient.connect(target, tls=files, api_key="t-audit") as reader:
        assert (await reader.get(state.gid)).owner == "orders"
