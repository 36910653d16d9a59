"""The run's own Postgres cluster (embedded), so that the run may stop and restart it.

``tm_service.store.EmbeddedPostgres`` drives it, in a helper process (see ``_pgctl``).

It listens on a fixed port for its whole life: every client reconnects to the same
address after a restart. A restart is a fast shutdown (every backend is terminated,
open transactions roll back), some seconds down, and a start on the same data.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg

from bench.chaos._procs import ChaosError, child_env, free_port, python_command

__all__ = ["ChaosPostgres"]

_PG_CTL_TIMEOUT = 120.0


class ChaosPostgres:
    """An embedded Postgres in a temporary directory under /var/tmp (out of $HOME)."""

    def __init__(self, *, fsync: bool, root: Path | None = None) -> None:
        self._root = root or Path(tempfile.mkdtemp(prefix="stepping-chaos-pg-", dir="/var/tmp"))
        self.port = free_port()
        self._data = self._root / "data"
        self._fsync = fsync
        self.restarts = 0

    def url(self, database: str = "postgres", *, port: int | None = None) -> str:
        """A SQLAlchemy asyncpg URL of ``database`` (through ``port`` when given)."""
        return f"postgresql+asyncpg://{self._user()}@127.0.0.1:{port or self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """The same for asyncpg itself."""
        return f"postgresql://{self._user()}@127.0.0.1:{self.port}/{database}"

    def _user(self) -> str:
        # EmbeddedPostgres keeps the superuser's generated password in this file of
        # the data directory (tm_service/store/_embedded.py, _PASSWORD_FILE).
        try:
            return f"postgres:{(self._data / 'stepping-password').read_text().strip()}"
        except FileNotFoundError:
            return "postgres"

    async def start(self) -> None:
        await self._pg_ctl("start")

    async def stop(self) -> None:
        await self._pg_ctl("stop")

    async def _pg_ctl(self, action: str) -> None:
        args = ["--data", str(self._data), "--port", str(self.port)]
        if self._fsync:
            args.append("--fsync")
        proc = await asyncio.create_subprocess_exec(
            *python_command("bench.chaos._pgctl"),
            action,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(),
        )
        _, err = await asyncio.wait_for(proc.communicate(), _PG_CTL_TIMEOUT)
        if proc.returncode != 0:
            tail = err.decode(errors="replace")[-2000:]
            raise ChaosError(f"postgres {action} failed ({proc.returncode}):\n{tail}")

    async def restart(self, down_seconds: float) -> None:
        """Stops the server, stays down for ``down_seconds``, starts it on the same port."""
        await self.stop()
        self.restarts += 1
        try:
            await asyncio.sleep(down_seconds)
        finally:
            await self.start()

    async def create_databases(self, *names: str) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            for name in names:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def destroy(self) -> None:
        await self.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    @property
    def log(self) -> Path:
        return self._data / "server.log"
