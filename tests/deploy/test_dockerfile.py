"""deploy/Dockerfile, read as a builder would (no Docker engine needed)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.deploy._manifests import BASE, DEPLOY, REPO, find, pod_spec, rendered
from tm_service.cli import build_parser

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|make|cmake|libpq-dev|python3?-dev|[\w.+-]+-dev)\b"
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def _stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        else:
            assert stages, f"{instruction} before FROM"
            stages[-1].instructions.append((instruction, rest.strip()))
    return stages


def test_multi_stage_with_a_slim_python_final_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert stages[-1].base == "python:3.11-slim"
    assert all(s.base.startswith("python:3.11") for s in stages)


def test_final_stage_has_no_build_tools_and_no_source_tree() -> None:
    final = _stages()[-1]
    for command in final.args("RUN"):
        assert not BUILD_TOOLS.search(command), f"build tool in the final image: {command}"
        assert "apt-get install" not in command
    for copy in final.args("COPY") + final.args("ADD"):
        assert "--from=" in copy, f"final stage copies from the build context: {copy}"
    installs = [c for c in final.args("RUN") if "pip install" in c]
    assert installs and all("--no-index" in c for c in installs), "install only the built wheels"


def test_runs_as_the_non_root_user_the_manifests_expect() -> None:
    final = _stages()[-1]
    (user,) = final.args("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root UID (runAsNonRoot checks it)"
    for workload in [*find(rendered(BASE), "Deployment"), *find(rendered(BASE), "Job")]:
        ctx = pod_spec(workload)["securityContext"]
        assert ctx["runAsUser"] == int(uid)
        if gid:
            assert ctx["runAsGroup"] == int(gid)


def test_entrypoint_serves_and_exposes_the_manifest_ports() -> None:
    final = _stages()[-1]
    (entrypoint,) = final.args("ENTRYPOINT")
    command = json.loads(entrypoint)
    assert command == ["stepping-tm", "serve"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command[0]] == "tm_service.cli:main"
    assert build_parser().parse_args(command[1:]).command == "serve"
    exposed = {int(p) for e in final.args("EXPOSE") for p in e.split()}
    (deployment,) = find(rendered(BASE), "Deployment")
    container_ports = {p["containerPort"] for p in pod_spec(deployment)["containers"][0]["ports"]}
    assert exposed == container_ports


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = (
            fnmatch.translate(raw.removeprefix("!"))
            .replace(".*", "[^/]*")
            .replace("[^/]*[^/]*", ".*")
        )
        candidates = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        if any(re.fullmatch(regex, c) for c in candidates):
            result = not negate
    return result


def test_build_context_holds_what_the_build_stage_copies() -> None:
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    copies = [shlex.split(c) for s in _stages() for c in s.args("COPY") if "--from=" not in c]
    sources = [src for c in copies for src in c[:-1]]
    assert sources
    for src in sources:
        path = REPO / src
        assert path.exists(), f"COPY {src}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        assert files, f"COPY {src}: no files"
        for f in files:
            rel = str(f.relative_to(REPO))
            assert not _ignored(rel, patterns), f"{rel} is copied but .dockerignore drops it"
    for secret_or_bulk in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "node_modules/.bin/buf",
    ):
        assert _ignored(secret_or_bulk, patterns), f"{secret_or_bulk} would be sent to the build"


@pytest.mark.parametrize(
    "pattern, path, ignored",
    [
        ("*", "a.txt", True),
        ("*", "dir/file.py", True),
        ("!tm_service/**", "tm_service/store/x.py", False),
    ],
)
def test_dockerignore_matcher(pattern: str, path: str, ignored: bool) -> None:
    assert _ignored(path, ["*", pattern] if pattern.startswith("!") else [pattern]) is ignored
