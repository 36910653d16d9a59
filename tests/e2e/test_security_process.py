"""A TM process with TLS and an auth file, driven as an operator would: tokens from
``stepping-tm auth new-token``, the CLI with --tls-ca and --token, the health port."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stepping.tm.v1 import tm_pb2 as S
from stepping.tm.v1 import tm_pb2_grpc

from tests.certs import server_pair
from tests.e2e.conftest import SpawnTm
from tests.e2e.test_cli_and_embedded import _cli
from tests.integration.helpers import gid, step
from tests.integration.participant import Participant

pytestmark = pytest.mark.e2e


async def test_tokens_from_the_cli_open_a_tls_tm_to_the_cli(
    spawn_tm: SpawnTm, database_url: str, participant: Participant, tmp_path: Path
) -> None:
    code, out, err = await _cli("auth", "new-token", "--principal", "orders", "--role", "client")
    assert code == 0, err
    orders_token = out.split("\n", 1)[0].removeprefix("token: ")
    code, reader_out, _ = await _cli(
        "auth", "new-token", "--principal", "audit", "--role", "reader"
    )
    reader_token = reader_out.split("\n", 1)[0].removeprefix("token: ")
    auth = tmp_path / "auth.toml"
    auth.write_text(out.split("\n", 1)[1] + "\n" + reader_out.split("\n", 1)[1])
    ca = trustme.CA()
    cert, key = server_pair(ca).write(tmp_path, "tm")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tm = await spawn_tm(
        database_url,
        tls_cert_file=cert,
        tls_key_file=key,
        auth_file=auth,
        health_listen="127.0.0.1:0",
    )
    m = re.search(r"health-only plaintext port on .* \(port (\d+)\)", tm.log_text())
    assert m, tm.log_text()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{m.group(1)}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        assert resp.status == health_pb2.HealthCheckResponse.SERVING

    target = f"localhost:{tm.port}"
    creds = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
    g = gid()
    async with grpc.aio.secure_channel(target, creds) as ch:
        stub = tm_pb2_grpc.TransactionManagerServiceStub(ch)
        await stub.Submit(
            S.SubmitRequest(
                gid=g, steps=[step(participant.target, "/a.v1.A/Do", name="d")], wait_result=True
            ),
            metadata=(("authorization", f"Bearer {orders_token}"),),
        )
    tls = ["--target", target, "--tls-ca", str(ca_file)]
    code, out, err = await _cli("tx", "show", g, *tls, "--token", orders_token)
    assert code == 0, err
    assert "owner:    orders" in out and "SUCCEEDED" in out
    token_file = tmp_path / "audit.token"
    token_file.write_text(reader_token + "\n")
    code, out, err = await _cli("tx", "list", *tls, "--token-file", str(token_file))
    assert code == 0, err
    assert g in out and "orders" in out
    code, _, err = await _cli("tx", "list", *tls)
    assert code == 1 and "UNAUTHENTICATED" in err
    code, _, err = await _cli("tx", "list", *tls, "--token", "made-up")
    assert code == 1 and "UNAUTHENTICATED" in err
    code, _, err = await _cli("tx", "show", "never-used", *tls, "--token", orders_token)
    assert code == 1 and "PERMISSION_DENIED" in err
    code, _, err = await _cli("tx", "list", "--target", target, "--token", orders_token)
    assert code == 1 and "UNAVAILABLE" in err  # plaintext to a TLS port
    assert "without STEPPING_AUTH_FILE" not in tm.log_text()


async def test_serving_other_hosts_without_an_auth_file_is_warned_about(
    spawn_tm: SpawnTm, database_url: str
) -> None:
    tm = await spawn_tm(database_url, listen="0.0.0.0:0")
    assert "without STEPPING_AUTH_FILE" in tm.log_text()
