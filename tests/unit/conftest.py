"""The unit lane runs without a database: a test that asks for one fails at once."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_database(request: pytest.FixtureRequest) -> None:
    if "pg_url" in request.fixturenames:
        pytest.fail("tests/unit must not use Postgres: put the test under tests/integration")
