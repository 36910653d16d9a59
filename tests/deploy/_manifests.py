"""Where the deploy files are, and the TM settings they must agree with."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.deploy._kustomize import Resource, render

__all__ = [
    "BASE",
    "DEPLOY",
    "OVERLAYS",
    "REPO",
    "find",
    "manifest_files",
    "pod_spec",
    "rendered",
    "setting_fields",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "kustomize" / "base"
OVERLAYS = sorted(p for p in (DEPLOY / "kustomize" / "overlays").iterdir() if p.is_dir())


def manifest_files() -> Iterator[Path]:
    """Every complete manifest (not kustomizations, not partial patches)."""
    for path in sorted((DEPLOY / "kustomize").rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.name.startswith("patch-"):
            continue
        yield path


def rendered(directory: Path) -> list[Resource]:
    return render(directory)


def find(resources: list[Resource], kind: str, name: str | None = None) -> list[Resource]:
    return [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]


def pod_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def setting_fields() -> dict[str, dataclasses.Field[Any]]:
    """The TM's settings by environment variable name (STEPPING_<FIELD>)."""
    from tm_service.config import ENV_PREFIX, Settings

    return {ENV_PREFIX + f.name.upper(): f for f in dataclasses.fields(Settings)}
