"""The offline renderer the deploy tests use agrees with the real kustomize."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy._kustomize import key, render
from tests.deploy._manifests import BASE, OVERLAYS, REPO

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with built-in kustomize) not installed")
@pytest.mark.parametrize("tree", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(REPO)))
def test_renderer_matches_kubectl_kustomize(tree: Path) -> None:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(tree)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    real = {key(r): r for r in yaml.safe_load_all(out) if r}
    ours = {key(r): r for r in render(tree)}
    assert sorted(ours) == sorted(real)
    for k, resource in real.items():
        assert ours[k] == resource, k


def test_renderer_applies_overlay_patches_by_merge_key() -> None:
    (overlay,) = [p for p in OVERLAYS if p.name == "example"]
    base = {key(r)[0::2]: r for r in render(BASE)}
    ours = {key(r)[0::2]: r for r in render(overlay)}
    base_tm = base["Deployment", "stepping-tm"]["spec"]["template"]["spec"]["containers"][0]
    tm = ours["Deployment", "stepping-tm"]["spec"]["template"]["spec"]["containers"][0]
    assert tm["resources"] != base_tm["resources"]
    # The overlay changes only the probes' port: the rest of each probe stays the base's.
    probe, base_probe = tm["readinessProbe"], base_tm["readinessProbe"]
    assert probe["grpc"]["port"] != base_probe["grpc"]["port"]
    assert {k: v for k, v in probe.items() if k != "grpc"} == {
        k: v for k, v in base_probe.items() if k != "grpc"
    }, "a patch must merge, not replace"
    assert tm["lifecycle"] == base_tm["lifecycle"]
    names = [v["name"] for v in tm["env"]]
    assert {"STEPPING_DATABASE_URL", "STEPPING_AUTH_FILE"} <= set(names), "env merged by name"
    assert tm["image"] != base_tm["image"]


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\nresources: []\n")
    with pytest.raises(NotImplementedError, match="commonLabels"):
        render(tmp_path)
