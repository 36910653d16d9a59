"""The Kubernetes manifests: valid for the API, and consistent with the TM's code.

Offline: schemas come from the kubernetes-validate package, the overlay is
rendered by tests/deploy/_kustomize.py (checked against ``kubectl kustomize``
in test_kustomize.py where kubectl exists).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy._kustomize import Resource, load_yaml_documents
from tests.deploy._manifests import (
    BASE,
    OVERLAYS,
    REPO,
    find,
    manifest_files,
    pod_spec,
    rendered,
    setting_fields,
)
from tm_service.cli import build_parser
from tm_service.config import Settings, parse_value
from tm_service.server import LIVENESS_NAME

# Oldest Kubernetes with GA gRPC probes and a current one.
K8S_VERSIONS = ["1.27.0", "1.37.0"]
TREES = [BASE, *OVERLAYS]


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


# Custom resources: kubernetes-validate has no schema for them, so their shape is
# checked by hand (test_certificate_writes_the_mounted_tls_secret).
CUSTOM_KINDS = {("cert-manager.io/v1", "Certificate")}


def _validate(resource: Resource, version: str) -> None:
    if (resource["apiVersion"], resource["kind"]) in CUSTOM_KINDS:
        return
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        raise AssertionError(
            f"{name} invalid for Kubernetes {version}: {err.message} "
            f"at {'.'.join(map(str, err.path))}"
        ) from None


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", list(manifest_files()), ids=_id)
def test_every_manifest_file_is_valid(path: Path, version: str) -> None:
    docs = load_yaml_documents(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        _validate(doc, version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("tree", OVERLAYS, ids=_id)
def test_rendered_overlay_is_valid(tree: Path, version: str) -> None:
    for resource in rendered(tree):
        _validate(resource, version)


def test_the_validator_rejects_a_broken_manifest() -> None:
    # Guards the guard: a misspelt field must fail strict validation.
    (deployment,) = find(rendered(BASE), "Deployment")
    pod_spec(deployment)["containers"][0]["readinessProbes"] = {}
    with pytest.raises(AssertionError, match="readinessProbes"):
        _validate(deployment, K8S_VERSIONS[-1])


# --- the TM's settings ------------------------------------------------------


def _env_of(resources: list[Resource], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it (secrets as '<secret>')."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        (config_map,) = find(resources, "ConfigMap", source["configMapRef"]["name"])
        env.update(config_map["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"<secret {ref['name']}/{ref['key']}>"
        else:
            env[var["name"]] = "<from pod>"
    return env


def _tm_container(resources: list[Resource]) -> tuple[Resource, dict[str, Any]]:
    (deployment,) = find(resources, "Deployment", "stepping-tm")
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == "tm"]
    return deployment, container


def deployment_annotations(resources: list[Resource]) -> dict[str, str]:
    deployment, _ = _tm_container(resources)
    return dict(deployment["spec"]["template"]["metadata"].get("annotations", {}))


def _settings_for(env: dict[str, str]) -> Settings:
    """What the TM reads from this environment (secret placeholders left out)."""
    plain = {k: v for k, v in env.items() if not v.startswith("<")}
    return Settings.load(env=plain)


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_every_stepping_variable_is_a_tm_setting_with_a_valid_value(tree: Path) -> None:
    resources = rendered(tree)
    fields = setting_fields()
    containers = [
        c
        for r in resources
        if r["kind"] in ("Deployment", "Job")
        for c in pod_spec(r)["containers"]
    ]
    assert len(containers) == 2
    for container in containers:
        for name, value in _env_of(resources, container).items():
            assert name.startswith("STEPPING_"), f"{container['name']}: stray variable {name}"
            if name not in fields:
                pytest.fail(
                    f"{name} is not a TM setting: tm_service/config.py Settings "
                    f"has no field {name.removeprefix('STEPPING_').lower()}"
                )
            if not value.startswith("<"):
                parse_value(fields[name], value)  # raises SettingsError when malformed


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_ports_and_probes_match_the_tm_settings(tree: Path) -> None:
    resources = rendered(tree)
    _, container = _tm_container(resources)
    settings = _settings_for(_env_of(resources, container))
    grpc_port = int(settings.listen.rpartition(":")[2])
    assert grpc_port == 36790
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == grpc_port
    health_port = int(settings.health_listen.rpartition(":")[2]) if settings.health_listen else None
    assert ports.get("health") == health_port != grpc_port
    # kubelet gRPC probes speak plaintext only: with TLS on the API port they must
    # ask the plaintext health-only port.
    probe_port = grpc_port
    if settings.tls_cert_file:
        assert health_port is not None, "TLS on: the probes need STEPPING_HEALTH_LISTEN"
        probe_port = health_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # The kubelet asks grpc.health.v1.Health/Check.
        assert container[probe]["grpc"]["port"] == probe_port, probe
    # Readiness: the overall health, which follows the database. Startup and liveness:
    # the process only, so a database outage makes pods unready, never restarts them.
    assert "service" not in container["readinessProbe"]["grpc"]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"]["service"] == LIVENESS_NAME, probe
    assert ports["metrics"] == settings.metrics_port == 9464
    annotations = deployment_annotations(resources)
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.metrics_port

    service_ports: dict[str, int] = {}
    for service in find(resources, "Service"):
        selector = service["spec"]["selector"]
        (deployment, _) = _tm_container(resources)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"], port
            service_ports.setdefault(port["name"], port["port"])
    assert service_ports == {"grpc": 36790, "metrics": 9464}


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_shutdown_grace_fits_in_the_termination_grace_period(tree: Path) -> None:
    resources = rendered(tree)
    deployment, container = _tm_container(resources)
    settings = _settings_for(_env_of(resources, container))
    assert settings.shutdown_grace_seconds >= 20, "in-flight step calls need time to finish"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    period = pod_spec(deployment)["terminationGracePeriodSeconds"]
    # The kubelet's clock starts before preStop; SIGKILL must not cut the TM's grace.
    assert float(pre_stop[1]) + settings.shutdown_grace_seconds < period


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_replicas_share_one_external_database_migrated_by_the_job(tree: Path) -> None:
    resources = rendered(tree)
    deployment, container = _tm_container(resources)
    env = _env_of(resources, container)
    settings = _settings_for(env)
    assert settings.migrate_on_start is False, "replicas must leave migrations to the Job"
    assert env["STEPPING_DATABASE_URL"].startswith("<secret "), "URL only from a Secret"
    assert env["STEPPING_REPLICA_ID"] == "<from pod>"
    assert deployment["spec"]["replicas"] >= 2

    (job,) = find(resources, "Job")
    (migrate,) = pod_spec(job)["containers"]
    assert migrate["image"] == container["image"], "the Job must migrate for this TM version"
    job_env = _env_of(resources, migrate)
    assert job_env["STEPPING_DATABASE_URL"] == env["STEPPING_DATABASE_URL"]
    args = build_parser().parse_args([*migrate["command"][1:], *migrate["args"]])
    assert migrate["command"][0] == "stepping-tm"
    assert (args.command, args.db_command, args.revision) == ("db", "upgrade", "head")


def test_no_secret_values_in_the_base() -> None:
    assert not find(rendered(BASE), "Secret")


@pytest.mark.parametrize("tree", OVERLAYS, ids=_id)
def test_overlay_provides_the_referenced_secret_and_a_namespace(tree: Path) -> None:
    resources = rendered(tree)
    _, container = _tm_container(resources)
    ref = next(
        v["valueFrom"]["secretKeyRef"]
        for v in container["env"]
        if v["name"] == "STEPPING_DATABASE_URL"
    )
    (secret,) = find(resources, "Secret", ref["name"])
    url = secret["stringData"][ref["key"]]
    assert url.startswith(("postgresql://", "postgres://"))
    assert "CHANGE_ME" in url, "only a placeholder credential may be committed"
    namespaces = {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces
    assert not any(
        r["spec"]["template"]["spec"]["containers"][0]["image"] == "stepping-tm"
        for r in resources
        if r["kind"] in ("Deployment", "Job")
    ), "image not pinned"


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_pods_run_unprivileged_on_a_read_only_root(tree: Path) -> None:
    for workload in [r for r in rendered(tree) if r["kind"] in ("Deployment", "Job")]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert "add" not in ctx["capabilities"]
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert "memory" in container["resources"]["limits"]
            # Python and grpc want a writable /tmp.
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


@pytest.mark.parametrize("tree", TREES, ids=_id)
def test_disruption_budget_and_autoscaler_target_the_tm(tree: Path) -> None:
    resources = rendered(tree)
    deployment, _ = _tm_container(resources)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (pdb,) = find(resources, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable", 0) == 1 or pdb["spec"].get("minAvailable", 0) >= 1
    (hpa,) = find(resources, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    assert 2 <= low <= deployment["spec"]["replicas"] <= high


def test_kustomize_apply_hint_in_overlay_is_a_real_command() -> None:
    # The overlay's header tells operators what to run; keep it pointing here.
    for tree in OVERLAYS:
        text = (tree / "kustomization.yaml").read_text()
        lines = [ln.lstrip("# ").strip() for ln in text.splitlines() if "kubectl apply" in ln]
        assert lines, f"{tree}: no apply hint"
        (path,) = [a for a in shlex.split(lines[0]) if a.startswith("deploy/")]
        assert (REPO / path).resolve() == tree.resolve()
