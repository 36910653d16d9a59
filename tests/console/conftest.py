"""A real TM with an auth file (an admin, a reader, a client) and its console on port 0."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.conftest import test_settings
from tm_service.server import TmServer

TOKENS = {"root": "admin", "audit": "reader", "orders": "client"}


def token(name: str) -> str:
    return f"tok-{name}-0123456789"


def write_auth(path: Path) -> Path:
    path.write_text(
        "\n".join(
            f'[[principal]]\nname = "{n}"\nroles = ["{r}"]\n'
            f'token_sha256 = ["{hashlib.sha256(token(n).encode()).hexdigest()}"]\n'
            for n, r in TOKENS.items()
        )
    )
    return path


def md(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token(name)}"),)


@pytest_asyncio.fixture
async def console_tm(database_url: str, tmp_path: Path) -> AsyncIterator[TmServer]:
    """The TM with STEPPING_CONSOLE_LISTEN on 127.0.0.1:0 (``tm.console.url``)."""
    settings = test_settings(
        database_url,
        auth_file=str(write_auth(tmp_path / "auth.toml")),
        console_listen="127.0.0.1:0",
        console_trace_url="http://jaeger.example:16686/trace/{trace_id}",
    )
    server = TmServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)
