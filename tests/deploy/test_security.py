"""The manifests' security: the NetworkPolicy, TLS and the auth file from Secrets.

README "Deploy" documents the labels and Secrets these tests pin.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy._kustomize import Resource
from tests.deploy._manifests import BASE, OVERLAYS, REPO, find, pod_spec, rendered
from tm_service.auth import Principals
from tm_service.config import Settings

TREES = [BASE, *OVERLAYS]
CLIENT_LABEL = {"stepping.io/client": "true"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
POSTGRES_PORTS = [{"protocol": "TCP", "port": 5432}]
# What cert-manager writes into a Certificate's Secret.
CERT_MANAGER_KEYS = {"tls.crt", "tls.key", "ca.crt"}
FILE_SETTINGS = (
    "STEPPING_TLS_CERT_FILE",
    "STEPPING_TLS_KEY_FILE",
    "STEPPING_TLS_CLIENT_CA_FILE",
    "STEPPING_AUTH_FILE",
)


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def _workload(resources: list[Resource], kind: str, name: str) -> Resource:
    (workload,) = find(resources, kind, name)
    return workload


def _policy_for(resources: list[Resource], workload: Resource) -> Resource:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    policies = [
        p
        for p in find(resources, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(policies) == 1, f"{workload['metadata']['name']}: {len(policies)} policies"
    policy = policies[0]
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    return policy


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in container.get("env", []) if "value" in v}


def _is_dns(rule: dict[str, Any]) -> bool:
    return rule.get("ports") == DNS_PORTS and rule.get("to") == [
        {"namespaceSelector": {"matchLabels": KUBE_SYSTEM}}
    ]


def _is_postgres(rule: dict[str, Any]) -> bool:
    return rule.get("ports") == POSTGRES_PORTS


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_api_only_from_labelled_clients_and_metrics_only_from_monitoring(tree: Path) -> None:
    resources = rendered(tree)
    deployment = _workload(resources, "Deployment", "stepping-tm")
    policy = _policy_for(resources, deployment)
    (container,) = pod_spec(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    by_port = {}
    for rule in policy["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        by_port[port["port"]] = rule["from"]
    # No other port (the health port included: kubelet probes need no rule).
    assert by_port == {
        ports["grpc"]: [{"podSelector": {"matchLabels": CLIENT_LABEL}}],
        ports["metrics"]: [{"namespaceSelector": {"matchLabels": MONITORING}}],
    }


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_egress_is_dns_and_postgres_plus_what_the_overlay_names(tree: Path) -> None:
    resources = rendered(tree)
    for kind, name in (("Deployment", "stepping-tm"), ("Job", "stepping-tm-migrate")):
        policy = _policy_for(resources, _workload(resources, kind, name))
        rules = policy["spec"]["egress"]
        assert sum(map(_is_dns, rules)) == 1, f"{name}: DNS"
        assert sum(map(_is_postgres, rules)) == 1, f"{name}: Postgres"
        others = [r for r in rules if not _is_dns(r) and not _is_postgres(r)]
        if tree == BASE or kind == "Job":
            assert not others, f"{name}: egress beyond DNS and Postgres"
        for rule in rules:
            assert rule.get("ports"), f"{name}: an egress rule open on every port"
        for rule in others:
            assert rule.get("to"), f"{name}: participants' egress open to every address"
        if kind == "Job":
            assert policy["spec"]["ingress"] == [], "nothing calls the migration Job"
        if tree != BASE:
            # The overlay narrows Postgres to the database, not to every address.
            (postgres,) = [r for r in rules if _is_postgres(r)]
            assert postgres.get("to"), f"{name}: Postgres egress not narrowed"


@pytest.mark.parametrize("tree", OVERLAYS, ids=_id)
def test_the_database_url_uses_the_port_the_policy_allows(tree: Path) -> None:
    (secret,) = find(rendered(tree), "Secret", "stepping-tm-database")
    assert urlsplit(secret["stringData"]["url"]).port == POSTGRES_PORTS[0]["port"]


@pytest.mark.parametrize("tree", OVERLAYS, ids=_id)
def test_overlay_serves_tls_with_auth_from_secrets_mounted_in_place(tree: Path) -> None:
    resources = rendered(tree)
    deployment = _workload(resources, "Deployment", "stepping-tm")
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    env = _container_env(container)
    settings = Settings.load(env={k: v for k, v in env.items() if k.startswith("STEPPING_")})
    assert settings.tls_cert_file and settings.tls_key_file, "TLS on in the overlay"
    assert settings.auth_file, "auth on in the overlay"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    certificates = {c["spec"]["secretName"] for c in find(resources, "Certificate")}
    for name in FILE_SETTINGS:
        if name not in env:
            continue
        path = PurePosixPath(env[name])
        mount = mounts.get(str(path.parent))
        assert mount is not None, f"{name}={path}: not in a mounted volume's top directory"
        # The kubelet updates a Secret volume in place only without subPath; the TM
        # re-reads the changed files.
        assert "subPath" not in mount and "subPathExpr" not in mount, name
        assert mount.get("readOnly") is True, name
        secret = volumes[mount["name"]].get("secret")
        assert secret is not None, f"{name}: not from a Secret"
        assert "items" not in secret, "every key of the Secret, as it is updated"
        if secret["secretName"] in certificates:
            keys = CERT_MANAGER_KEYS
        else:
            (rendered_secret,) = find(resources, "Secret", secret["secretName"])
            keys = set(rendered_secret.get("stringData", {})) | set(rendered_secret.get("data", {}))
        assert path.name in keys, f"{name}: {secret['secretName']} has no key {path.name}"


@pytest.mark.parametrize("tree", OVERLAYS, ids=_id)
def test_certificate_writes_the_mounted_tls_secret(tree: Path) -> None:
    resources = rendered(tree)
    (certificate,) = find(resources, "Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    # Hand-checked shape (no schema for this custom resource in kubernetes-validate).
    assert set(spec) <= {
        "secretName",
        "duration",
        "renewBefore",
        "privateKey",
        "usages",
        "dnsNames",
        "issuerRef",
    }, sorted(spec)
    issuer = spec["issuerRef"]
    assert issuer["kind"] in ("Issuer", "ClusterIssuer") and issuer["name"]
    assert issuer.get("group", "cert-manager.io") == "cert-manager.io"
    assert "server auth" in spec["usages"]
    assert spec["privateKey"]["rotationPolicy"] == "Always"
    deployment = _workload(resources, "Deployment", "stepping-tm")
    namespace = deployment["metadata"]["namespace"]
    assert certificate["metadata"]["namespace"] == namespace
    secret_volumes = {
        v["secret"]["secretName"] for v in pod_spec(deployment)["volumes"] if "secret" in v
    }
    assert spec["secretName"] in secret_volumes
    for service in find(resources, "Service"):
        name = service["metadata"]["name"]
        assert {f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"} <= set(
            spec["dnsNames"]
        ), name
    (main,) = find(resources, "Service", "stepping-tm")
    assert main["metadata"]["name"] in spec["dnsNames"], (
        "the short name clients in the namespace dial"
    )


@pytest.mark.parametrize("tree", OVERLAYS, ids=_id)
def test_auth_placeholder_parses_and_lets_nobody_in(tree: Path) -> None:
    (secret,) = find(rendered(tree), "Secret", "stepping-tm-auth")
    text = secret["stringData"]["auth.toml"]
    assert "CHANGE_ME" in text, "only a placeholder may be committed"
    principals = Principals.parse(text)  # the TM refuses to start on a malformed file
    assert principals.tokens == () and principals.identities == {}


def test_readme_documents_the_labels_and_secrets() -> None:
    readme = (REPO / "README.md").read_text()
    deploy = readme[readme.index("## Deploy") :]
    for needle in (
        "stepping.io/client",
        "kubernetes.io/metadata.name: monitoring",
        "stepping-tm-tls",
        "stepping-tm-auth",
        "STEPPING_HEALTH_LISTEN",
    ):
        assert needle in deploy, needle
