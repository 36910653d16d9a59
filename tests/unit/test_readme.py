"""The README documents every setting, and its quick start names the scripts that exist."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from tm_service.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [f.name for f in fields(Settings) if f"`{ENV_PREFIX}{f.name.upper()}`" not in README]
    assert not missing, f"add to the README's configuration table: {missing}"


def test_quick_start_scripts_exist_and_ci_runs_the_test_command() -> None:
    for script in ("scripts/run-tm", "scripts/test"):
        assert f"./{script}" in README
        assert os.access(ROOT / script, os.X_OK)
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
