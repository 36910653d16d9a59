"""A small, offline renderer for the kustomize features deploy/kustomize uses.

Supported: ``resources`` (files and directories with a kustomization),
``namespace``, ``images`` and ``patches`` given as strategic-merge files (the
patch names its target by kind and name). Anything else in a kustomization is
refused, so a new feature in the manifests cannot silently render wrong; where
the real ``kubectl kustomize`` is on the machine, test_kustomize compares the
two renderings.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Resource", "key", "load_yaml_documents", "render"]

Resource = dict[str, Any]

_SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
}
# Strategic-merge keys of the lists the manifests patch (from the Kubernetes
# API's patchMergeKey annotations).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "envFrom": None,
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


def load_yaml_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document in ``path``."""
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def key(resource: Resource) -> tuple[str, str, str]:
    """(kind, namespace, name): what identifies a rendered resource."""
    meta = resource.get("metadata", {})
    return resource["kind"], meta.get("namespace", ""), meta["name"]


def render(directory: Path) -> list[Resource]:
    """The resources that ``kubectl kustomize directory`` would print."""
    kustomization = _read_kustomization(directory)
    unknown = set(kustomization) - _SUPPORTED
    if unknown:
        raise NotImplementedError(f"{directory}: kustomization fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources.extend(render(path))
        else:
            resources.extend(load_yaml_documents(path))
    seen: set[tuple[str, str, str]] = set()
    for r in resources:
        if key(r) in seen:
            raise ValueError(f"{directory}: duplicate resource {key(r)}")
        seen.add(key(r))
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise NotImplementedError(f"{directory}: patch {patch_entry}")
        for patch in load_yaml_documents(directory / patch_entry["path"]):
            _apply_patch(resources, patch, directory)
    namespace = kustomization.get("namespace")
    if namespace:
        for r in resources:
            if r["kind"] not in _CLUSTER_SCOPED:
                r.setdefault("metadata", {})["namespace"] = namespace
    for image in kustomization.get("images", []):
        for r in resources:
            _set_image(r, image)
    return resources


def _read_kustomization(directory: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = directory / name
        if path.exists():
            (doc,) = load_yaml_documents(path)
            return dict(doc)
    raise FileNotFoundError(f"no kustomization in {directory}")


def _apply_patch(resources: list[Resource], patch: Resource, directory: Path) -> None:
    matches = [
        r
        for r in resources
        if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(matches) != 1:
        raise ValueError(
            f"{directory}: patch for {patch['kind']}/{patch['metadata']['name']} "
            f"matches {len(matches)} resources"
        )
    merged = _merge(matches[0], patch, field="")
    matches[0].clear()
    matches[0].update(merged)


def _merge(base: Any, patch: Any, field: str) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _merge(out[k], v, field=k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        merge_key = _MERGE_KEYS.get(field)
        if merge_key is None:
            return copy.deepcopy(patch)
        out_list = [copy.deepcopy(item) for item in base]
        added: list[Any] = []
        for item in patch:
            for i, existing in enumerate(out_list):
                if existing.get(merge_key) == item.get(merge_key):
                    out_list[i] = _merge(existing, item, field="")
                    break
            else:
                added.append(copy.deepcopy(item))
        # kustomize puts the items a patch adds before the base's, in patch order.
        return added + out_list
    return copy.deepcopy(patch)


def _set_image(resource: Resource, image: dict[str, str]) -> None:
    spec = resource.get("spec", {})
    pod_spec = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get(
        "spec", {}
    ).get("template", {}).get("spec")
    if not pod_spec:
        return
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name != image["name"]:
            continue
        new_name = image.get("newName", name)
        new_tag = image.get("newTag", tag)
        container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
