"""Only the TM may call a participant: mTLS with the TM's identity, and signed calls.

Real certificates (a trustme CA), a real TM and SDK ParticipantServers on port 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
import trustme
from stepping import contract
from stepping.contract import CallInfo
from stepping.participant.v1 import participant_pb2
from stepping.tm.v1 import tm_pb2 as S

from participant_sdk import ParticipantServer, ServerTls, step
from participant_sdk._barrier import barrier_table
from participant_sdk.migrations import create_barrier_table
from tests import conftest
from tests.integration.helpers import fast_retry, gid, tm_stub
from tests.sdk.conftest import MakeEngine
from tm_service import TmServer

SERVICE = "shop.v1.Shop"
METHOD = f"/{SERVICE}/Reserve"
TM_IDENTITY = "tm.stepping.test"
KEY = b"a-shared-secret"

ran: list[str] = []


@step(name="Reserve")
async def reserve(sku: bytes) -> bytes:
    ran.append(sku.decode())  # the step body (where a step's barrier would run)
    return sku + b":reserved"


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _pem_files(tmp: Path, name: str, cert: trustme.LeafCert) -> tuple[str, str]:
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    return str(cert_file), str(key_file)


def _server_tls(ca: trustme.CA) -> ServerTls:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    return ServerTls(
        cert_chain=b"".join(b.bytes() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes(),
        client_ca=ca.cert_pem.bytes(),
    )


@asynccontextmanager
async def _tm(database_url: str, **settings: Any) -> AsyncIterator[TmServer]:
    server = TmServer(conftest.test_settings(database_url, **settings))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)


async def _run(tm: TmServer, target: str, attempts: int = 1) -> S.Transaction:
    async with tm_stub(tm.target) as stub:
        request = S.SubmitRequest(
            gid=gid(),
            steps=[
                S.Step(
                    name="reserve",
                    action=S.Endpoint(target=target, method=METHOD),
                    payload=b"sku-1",
                )
            ],
            options=S.TransactionOptions(retry_policy=fast_retry(attempts=attempts)),
            wait_result=True,
        )
        return (await stub.Submit(request)).transaction


def _tls_settings(tmp: Path, ca: trustme.CA, identity: str | None) -> dict[str, Any]:
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    out: dict[str, Any] = {"participant_tls": True, "participant_tls_ca_file": str(ca_file)}
    if identity is not None:
        cert, key = _pem_files(tmp, identity, ca.issue_cert(identity, common_name=identity))
        out |= {"participant_tls_cert_file": cert, "participant_tls_key_file": key}
    return out


async def test_mtls_accepts_the_tms_identity_and_refuses_another(
    database_url: str, ca: trustme.CA, tmp_path: Path
) -> None:
    async with ParticipantServer(
        steps=[reserve],
        service=SERVICE,
        host="127.0.0.1",
        tls=_server_tls(ca),
        tm_identities=[TM_IDENTITY],
    ) as participant:
        async with _tm(database_url, **_tls_settings(tmp_path, ca, TM_IDENTITY)) as tm:
            tx = await _run(tm, participant.target)
            assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED, tx.error
            assert tx.steps[0].result == b"sku-1:reserved"
        assert ran == ["sku-1"]
        other = tmp_path / "other"
        other.mkdir()
        async with _tm(database_url, **_tls_settings(other, ca, "intruder.test")) as tm:
            tx = await _run(tm, participant.target)
            assert tx.status == S.TRANSACTION_STATUS_FAILED
            assert tx.steps[0].last_error.endswith("PERMISSION_DENIED: the caller is not the TM")
        no_cert = tmp_path / "none"
        no_cert.mkdir()
        async with _tm(database_url, **_tls_settings(no_cert, ca, None)) as tm:
            tx = await _run(tm, participant.target)  # the handshake fails: no client cert
            assert tx.status == S.TRANSACTION_STATUS_FAILED
            assert tx.steps[0].last_error.endswith("UNAVAILABLE: participant unreachable")
        assert ran == ["sku-1"]  # the refused TMs never ran the step


async def test_a_plaintext_tm_cannot_reach_a_tls_participant(
    database_url: str, ca: trustme.CA
) -> None:
    async with (
        ParticipantServer(
            steps=[reserve], service=SERVICE, host="127.0.0.1", tls=_server_tls(ca)
        ) as participant,
        _tm(database_url) as tm,
    ):
        tx = await _run(tm, participant.target)
        assert tx.status == S.TRANSACTION_STATUS_FAILED
        assert ran == []


def test_tm_identities_need_mtls() -> None:
    with pytest.raises(ValueError, match="mTLS"):
        ParticipantServer(steps=[reserve], service=SERVICE, tm_identities=[TM_IDENTITY])


async def test_signed_calls_only_the_tm_with_the_key_runs_steps(
    database_url: str, tmp_path: Path
) -> None:
    right, wrong = tmp_path / "right.key", tmp_path / "wrong.key"
    right.write_bytes(KEY + b"\n")  # the trailing newline is not part of the key
    wrong.write_bytes(b"another-secret\n")
    async with ParticipantServer(
        steps=[reserve], service=SERVICE, host="127.0.0.1", signing_key=KEY.decode()
    ) as participant:
        async with _tm(database_url) as tm:
            tx = await _run(tm, participant.target)
            assert tx.status == S.TRANSACTION_STATUS_FAILED
            assert tx.steps[0].last_error.endswith(
                "UNAUTHENTICATED: missing or wrong stepping-signature"
            )
        async with _tm(database_url, participant_signing_key_file=str(wrong)) as tm:
            tx = await _run(tm, participant.target)
            assert tx.status == S.TRANSACTION_STATUS_FAILED
            assert "UNAUTHENTICATED" in tx.steps[0].last_error
        assert ran == []
        async with _tm(database_url, participant_signing_key_file=str(right)) as tm:
            tx = await _run(tm, participant.target)
            assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED, tx.error
        assert ran == ["sku-1"]


async def _until(check: Any, timeout: float = 10.0) -> Any:
    """Run ``check()`` until it returns something true (the TM looks at its files every
    0.2 s here); its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.2)


def _guarded(ca: trustme.CA, key: bytes) -> ParticipantServer:
    """A participant that takes only the TM's certificate from ``ca``, signed with ``key``."""
    return ParticipantServer(
        steps=[reserve],
        service=SERVICE,
        host="127.0.0.1",
        tls=_server_tls(ca),
        tm_identities=[TM_IDENTITY],
        signing_key=key,
    )


async def test_rotated_tls_files_and_signing_key_are_used_without_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    settings = _tls_settings(tmp_path, old_ca, TM_IDENTITY)
    key_file = tmp_path / "signing.key"
    key_file.write_bytes(b"old-key\n")
    settings |= {
        "participant_signing_key_file": str(key_file),
        "participant_reload_seconds": 0.2,
    }

    async def succeeded(tm: TmServer, target: str) -> bool:
        tx = await _run(tm, target)
        return tx.status == S.TRANSACTION_STATUS_SUCCEEDED

    async with _tm(database_url, **settings) as tm:
        async with _guarded(old_ca, b"old-key") as before:
            assert await succeeded(tm, before.target)
        # The participants moved to a new CA and a new key: refused until the TM's files
        # are replaced in place (as a Secret update does), then used with no restart.
        async with _guarded(new_ca, b"new-key") as after:
            assert not await succeeded(tm, after.target)
            new_ca.cert_pem.write_to_path(settings["participant_tls_ca_file"])
            _pem_files(tmp_path, TM_IDENTITY, new_ca.issue_cert(TM_IDENTITY))
            key_file.write_bytes(b"new-key\n")
            assert await _until(lambda: succeeded(tm, after.target))
    assert ran == ["sku-1", "sku-1"]


async def _call(target: str, method: str, body: bytes, md: list[tuple[str, str]]) -> Any:
    async with grpc.aio.insecure_channel(target) as channel:
        return await channel.unary_unary(method, None, None)(body, metadata=md, timeout=5)


async def test_a_forged_query_prepared_writes_no_barrier_row(make_engine: MakeEngine) -> None:
    engine = await make_engine()
    await create_barrier_table(engine)
    async with ParticipantServer(host="127.0.0.1", databases=engine, signing_key=KEY) as server:
        body = participant_pb2.QueryPreparedRequest(gid="g-forged").SerializeToString()
        info = CallInfo(gid="g-forged", op=contract.OP_QUERY_PREPARED)
        for md in (info.metadata(), info.metadata(signing_key=b"guess", payload=body)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(server.target, contract.QUERY_PREPARED_METHOD, body, md)
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        async with engine.connect() as conn:
            rows = await conn.scalar(sa.select(sa.func.count()).select_from(barrier_table))
        assert rows == 0  # the back-check would have inserted a "rollback" row
        # Signed by the key, over the bytes sent: answered (and the row is written).
        signed = info.metadata(signing_key=KEY, payload=body)
        raw = await _call(server.target, contract.QUERY_PREPARED_METHOD, body, signed)
        answer = participant_pb2.QueryPreparedResponse.FromString(raw)
        assert answer.outcome == participant_pb2.PREPARED_OUTCOME_ROLLED_BACK


async def test_a_signature_for_another_attempt_or_payload_is_refused() -> None:
    async with ParticipantServer(
        steps=[reserve], service=SERVICE, host="127.0.0.1", signing_key=KEY
    ) as server:
        call = CallInfo(gid="g-1", op="action", step_index=0, attempt=2)
        replayed = [
            (k, v)
            for k, v in CallInfo(gid="g-1", op="action", step_index=0, attempt=1).metadata(
                signing_key=KEY, payload=b"sku-1"
            )
        ]
        cases = [
            (b"sku-1", [*call.metadata(), replayed[5]]),  # attempt 1's signature on attempt 2
            (b"sku-2", call.metadata(signing_key=KEY, payload=b"sku-1")),
        ]
        for body, md in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(server.target, METHOD, body, md)
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert ran == []
        ok = await _call(server.target, METHOD, b"sku-1", replayed)
        assert ok == b"sku-1:reserved"


def _uri_cert(ca: trustme.CA, uri: str, tmp: Path) -> tuple[str, str]:
    """A client certificate whose only identity is a URI SAN (SPIFFE), signed by ``ca``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stepping")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_file, key_file = tmp / "uri.crt", tmp / "uri.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


async def test_a_spiffe_uri_san_is_the_tms_identity(
    database_url: str, ca: trustme.CA, tmp_path: Path
) -> None:
    spiffe = "spiffe://prod/ns/stepping/sa/tm"
    settings = _tls_settings(tmp_path, ca, None)
    cert, key = _uri_cert(ca, spiffe, tmp_path)
    settings |= {"participant_tls_cert_file": cert, "participant_tls_key_file": key}
    async with (
        ParticipantServer(
            steps=[reserve],
            service=SERVICE,
            host="127.0.0.1",
            tls=_server_tls(ca),
            tm_identities=[spiffe],
        ) as participant,
        _tm(database_url, **settings) as tm,
    ):
        tx = await _run(tm, participant.target)
        assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED, tx.steps[0].last_error


async def test_a_tls_participant_named_by_dns_is_checked_against_its_name(
    database_url: str, ca: trustme.CA, tmp_path: Path
) -> None:
    import ipaddress

    from tm_service.processing import GrpcTransport
    from tm_service.processing._transport import channel_credentials

    cert = ca.issue_cert("bank.test")
    tls = ServerTls(
        cert_chain=b"".join(b.bytes() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes(),
    )
    names = {"bank.test": "127.0.0.1", "other.test": "127.0.0.1"}

    async def resolve(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address(names[host])]

    settings = conftest.test_settings(database_url, **_tls_settings(tmp_path, ca, None))
    transport = GrpcTransport(credentials=channel_credentials(settings), resolver=resolve)
    tm = TmServer(settings, transport=transport)
    async with ParticipantServer(
        steps=[reserve], service=SERVICE, host="127.0.0.1", tls=tls
    ) as participant:
        await tm.start()
        try:
            # Dialled on the address the TM resolved and checked, verified by the name.
            tx = await _run(tm, f"bank.test:{participant.port}")
            assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED, tx.steps[0].last_error
            tx = await _run(tm, f"other.test:{participant.port}")  # the cert is not its
            assert tx.status == S.TRANSACTION_STATUS_FAILED
        finally:
            await tm.stop(grace=1.0)
    assert ran == ["sku-1"]
