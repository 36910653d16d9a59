"""What the image runs, run here as the pods would: the built wheel, the manifests' env.

No Docker engine is needed: the project wheel is built as deploy/Dockerfile's
build stage builds it and installed (without its dependencies, which come from
this venv) into a directory of its own, so the code under test is what the
image holds, not the source tree. Then, with the environment the rendered
overlay gives the containers and a fresh, empty database: the migration Job's
command, then the Deployment's ENTRYPOINT probed like the kubelet does (on the
plaintext health port), called like a client does (TLS and a bearer token, from
files laid out as the overlay's Secret volumes), then SIGTERM as on a rollout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

from tests.deploy._manifests import OVERLAYS, REPO, find, pod_spec, rendered
from tm_service.config import Settings

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def image_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project wheel, built like the image's build stage and installed alone."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(out / "dist"),
            str(REPO),
        ],
        check=True,
        cwd=out,
        timeout=180,
    )
    (wheel,) = (out / "dist").glob("stepping_tm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "tm_service/cli.py",
        "tm_service/telemetry/_setup.py",
        "stepping/tm/v1/tm_pb2.py",
        "stepping/participant/v1/participant_pb2_grpc.py",
        "tm_service/store/migrations/env.py",
        "tm_service/store/migrations/script.py.mako",
    ):
        assert needed in names, f"the image would lack {needed}"
    assert any(n.startswith("tm_service/store/migrations/versions/") for n in names)
    site = out / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        cwd=out,
        timeout=180,
    )
    yield site
    shutil.rmtree(out, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _overlay() -> list[dict[str, Any]]:
    (overlay,) = [p for p in OVERLAYS if p.name == "example"]
    return rendered(overlay)


@dataclass
class Volumes:
    """The overlay's Secret volumes, as files in a directory of the test's."""

    root: Path
    mounts: dict[str, Path]  # mountPath -> directory here
    ca_pem: bytes
    token: str
    server_name: str

    def local(self, path: str) -> str:
        for mount, directory in self.mounts.items():
            if path.startswith(mount + "/"):
                return str(directory / path.removeprefix(mount + "/"))
        return path


@pytest.fixture
def volumes(tmp_path: Path, image_site: Path) -> Volumes:
    """tls.crt/tls.key/ca.crt as cert-manager writes them, auth.toml with a fresh token."""
    resources = _overlay()
    (deployment,) = find(resources, "Deployment", "stepping-tm")
    spec = pod_spec(deployment)
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    (certificate,) = find(resources, "Certificate")
    ca = trustme.CA()
    server = ca.issue_cert(*certificate["spec"]["dnsNames"])
    out = subprocess.run(
        [
            str(image_site / "bin" / "stepping-tm"),
            "auth",
            "new-token",
            "--principal",
            "ops",
            "--role",
            "client",
        ],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(image_site)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    token_line, _, auth_toml = out.partition("\n")
    token = token_line.removeprefix("token: ")
    contents = {
        certificate["spec"]["secretName"]: {
            "tls.crt": server.cert_chain_pems[0].bytes(),
            "tls.key": server.private_key_pem.bytes(),
            "ca.crt": ca.cert_pem.bytes(),
        },
        "stepping-tm-auth": {"auth.toml": auth_toml.encode()},
    }
    mounts: dict[str, Path] = {}
    for mount in spec["containers"][0]["volumeMounts"]:
        if mount["name"] not in secrets:
            continue
        directory = tmp_path / mount["name"]
        directory.mkdir()
        for name, data in contents[secrets[mount["name"]]].items():
            (directory / name).write_bytes(data)
        mounts[mount["mountPath"]] = directory
    assert len(mounts) == 2, mounts
    return Volumes(tmp_path, mounts, ca.cert_pem.bytes(), token, certificate["spec"]["dnsNames"][0])


def _pod_env(
    site: Path, container_name: str, database_url: str, volumes: Volumes | None = None
) -> dict[str, str]:
    resources = _overlay()
    workload = next(
        r
        for r in resources
        if r["kind"] in ("Deployment", "Job")
        and pod_spec(r)["containers"][0]["name"] == container_name
    )
    (container,) = pod_spec(workload)["containers"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
        "PYTHONPATH": str(site),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for source in container["envFrom"]:
        (config_map,) = find(resources, "ConfigMap", source["configMapRef"]["name"])
        env.update(config_map["data"])
    for var in container["env"]:
        if "secretKeyRef" in var.get("valueFrom", {}):
            env[var["name"]] = database_url  # the Secret's value
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = "stepping-tm-7d9c-x2x7q"  # the pod name
        elif "value" in var:
            assert volumes is not None, f"{container_name} sets {var['name']}"
            env[var["name"]] = volumes.local(var["value"])
    return env


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _command(site: Path, container: list[str]) -> list[str]:
    assert container[0] == "stepping-tm"
    # The console script pip wrote, with this interpreter (the venv's packages).
    return [str(site / "bin" / "stepping-tm"), *container[1:]]


async def test_migration_job_then_pods_serve_health_and_stop_on_sigterm(
    image_site: Path, make_database: Callable[..., Awaitable[str]], volumes: Volumes
) -> None:
    database_url = await make_database(migrated=False)

    # The Job: `stepping-tm db upgrade` against the empty database.
    job_env = _pod_env(image_site, "migrate", database_url)
    probe = subprocess.run(
        [sys.executable, "-c", "import tm_service, stepping; print(tm_service.__file__)"],
        env=job_env,
        cwd=image_site,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(image_site)), "testing the source tree, not the wheel"
    job = await asyncio.to_thread(
        subprocess.run,
        _command(image_site, ["stepping-tm", "db", "upgrade"]),
        env=job_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 0, job.stderr

    # The Deployment's container: ENTRYPOINT `stepping-tm serve`, migrations off.
    env = _pod_env(image_site, "tm", database_url, volumes)
    settings = Settings.load(env=env)
    assert settings.migrate_on_start is False
    assert settings.tls_cert_file and settings.auth_file, "the overlay serves TLS with auth"
    port = _free_port()
    env["STEPPING_LISTEN"] = f"127.0.0.1:{port}"  # 36790 may be taken on this machine
    assert env["STEPPING_METRICS_PORT"] == "9464"  # the annotation's port; may be taken too
    metrics_port = _free_port()
    env["STEPPING_METRICS_PORT"] = str(metrics_port)
    assert env["STEPPING_HEALTH_LISTEN"] == "0.0.0.0:36791"  # the probes' port
    health_port = _free_port()
    env["STEPPING_HEALTH_LISTEN"] = f"127.0.0.1:{health_port}"
    tls = grpc.ssl_channel_credentials(root_certificates=volumes.ca_pem)
    token = grpc.access_token_call_credentials(volumes.token)
    options = [("grpc.ssl_target_name_override", volumes.server_name)]
    proc = subprocess.Popen(
        _command(image_site, ["stepping-tm", "serve"]),
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The kubelet: plaintext, on the health port.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as probe_channel:
            health = health_pb2_grpc.HealthStub(probe_channel)
            deadline = time.monotonic() + 60  # the startupProbe allows 30 x 2 s
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    status = reply.status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
            assert status == health_pb2.HealthCheckResponse.SERVING, "never became ready"
        # A client: TLS (the Certificate's name) and a token from the auth Secret.
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}", grpc.composite_channel_credentials(tls, token), options
        ) as channel:
            tm = tm_pb2_grpc.TransactionManagerServiceStub(channel)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", tls, options) as anonymous:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await tm_pb2_grpc.TransactionManagerServiceStub(anonymous).NewGid(
                        tm_pb2.NewGidRequest(), timeout=5
                    )
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # The schema the Job applied is the one the TM uses.
            gid = (await tm.NewGid(tm_pb2.NewGidRequest(), timeout=5)).gid
            nowhere = tm_pb2.Endpoint(target="127.0.0.1:1", method="/x.v1.Y/Z")
            await tm.Prepare(
                tm_pb2.PrepareRequest(
                    gid=gid, steps=[tm_pb2.Step(name="s", action=nowhere)], query_prepared=nowhere
                ),
                timeout=5,
            )
            aborted = await tm.Abort(tm_pb2.AbortRequest(gid=gid), timeout=5)
            assert aborted.transaction.status == tm_pb2.TRANSACTION_STATUS_ABORTED
        # Prometheus scrapes the port the pod annotations name (from the built wheel).
        metrics = await asyncio.to_thread(_scrape, metrics_port)
        assert "stepping_jobs_finished_total{" in metrics
        assert 'stepping_status="ABORTED"' in metrics

        grace = Settings.load(env=env).shutdown_grace_seconds
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, grace + 5)
        assert time.monotonic() - started < grace, "an idle TM must not wait out its grace"
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=10)[0]
    assert proc.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), output
