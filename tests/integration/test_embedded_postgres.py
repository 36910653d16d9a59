"""The embedded Postgres: password (SCRAM) auth on new data directories, old ones still open."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tm_service.store import EmbeddedPostgres


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Under /var/tmp like the TM's default: the server's OS user must reach it as root.
    root = Path(tempfile.mkdtemp(prefix="stepping-embedded-auth-", dir="/var/tmp"))
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_a_new_data_dir_requires_the_generated_password(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, fsync=False)
    try:
        url = pg.start()
        password = urlsplit(url).password
        assert password and len(password) >= 24
        password_file = data_dir / "stepping-password"
        assert password_file.read_text().strip() == password
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        conn = await asyncpg.connect(_plain(url))
        try:
            assert await conn.fetchval("SHOW password_encryption") == "scram-sha-256"
        finally:
            await conn.close()
        for wrong in ("", "not-the-password"):
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(
                    host="127.0.0.1", port=pg.port, user="postgres", password=wrong
                )
        # A TM that finds the server running (after a crash) gets the same URL.
        assert EmbeddedPostgres(data_dir).start() == url
    finally:
        pg.destroy()


async def test_a_data_dir_initialised_with_trust_keeps_working(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, fsync=False)
    # As versions before SCRAM initialised it.
    pg._prepare_dirs()
    pg._run("initdb", "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--no-sync")
    try:
        url = pg.start()
        assert urlsplit(url).password is None
        conn = await asyncpg.connect(_plain(url))
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        pg.destroy()
