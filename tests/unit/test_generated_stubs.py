"""The committed Python stubs are exactly what scripts/gen-proto makes from proto/."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Hand-written modules among the stubs: gen-proto must keep them, not make them.
HAND_WRITTEN = ("stepping/contract.py", "stepping/dtm_contract.py")


def _tree(path: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(path)): p
        for p in path.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_python_stubs_are_fresh(tmp_path: Path) -> None:
    for name in HAND_WRITTEN:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "gen" / "python" / name, tmp_path / name)
    subprocess.run(
        [str(ROOT / "scripts" / "gen-proto"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh, committed = _tree(tmp_path), _tree(ROOT / "gen" / "python")
    assert sorted(fresh) == sorted(committed), "run scripts/gen-proto: files differ"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not stale, f"run scripts/gen-proto: stale {stale}"
