"""The benchmark's Postgres: the server (given or embedded), its databases, its counters.

Each system under test gets a database of its own, created fresh for it, so the
cumulative counters of ``pg_stat_database`` (commits, rollbacks) and
``pg_stat_user_tables`` (rows inserted/updated/deleted) of that database are its own.

A backend publishes its counters at most once a second, and an idle one may keep them
up to ten seconds; only a backend that exits publishes at once. So the counters are
read around the whole life of the system under test: snapshot A after its schema is
migrated (by a process that has exited) and before it starts, snapshot B after it
stopped and every backend of its database has gone; the delta is divided by every job
of the run. Start-up and shutdown are inside (a few commits, nothing against thousands
of jobs). The snapshot query is a transaction of its own in the measured database: one
commit, subtracted.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tm_service.store import EmbeddedPostgres

__all__ = ["PgDelta", "PgServer", "PgSnapshot"]

# Per database: commits (read-only transactions count too), rollbacks, rows written.
# Server-wide (only the system under test runs meanwhile): WAL bytes, transaction ids
# assigned (= transactions that wrote), WAL fsyncs (Postgres 18+, else NULL).
_SNAPSHOT_SQL = """
SELECT d.xact_commit, d.xact_rollback,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal,
       (SELECT coalesce(json_object_agg(relname,
                 json_build_array(n_tup_ins, n_tup_upd, n_tup_del)), '{}')::text
          FROM pg_stat_user_tables) AS tables,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xids,
       WAL_FSYNCS AS wal_fsyncs,
       (SELECT true FROM pg_stat_force_next_flush()) AS flushed
  FROM pg_stat_database d
 WHERE d.datname = current_database()
"""
_WAL_FSYNCS_PG18 = "(SELECT sum(fsyncs)::bigint FROM pg_stat_io WHERE object = 'wal')"

_MONITOR_APP = "stepping-bench-monitor"

# A snapshot's own transaction, counted by the next snapshot.
MONITOR_COMMITS_PER_SNAPSHOT = 1


@dataclass(frozen=True)
class PgSnapshot:
    commits: int
    rollbacks: int
    wal_bytes: int
    tables: dict[str, tuple[int, int, int]]  # relname -> (ins, upd, del)
    xids: int
    wal_fsyncs: int | None

    def delta_to(self, later: PgSnapshot) -> PgDelta:
        tables = {}
        for name, (i, u, d) in later.tables.items():
            i0, u0, d0 = self.tables.get(name, (0, 0, 0))
            tables[name] = (i - i0, u - u0, d - d0)
        fsyncs = None
        if later.wal_fsyncs is not None and self.wal_fsyncs is not None:
            fsyncs = later.wal_fsyncs - self.wal_fsyncs
        return PgDelta(
            commits=later.commits - self.commits - MONITOR_COMMITS_PER_SNAPSHOT,
            rollbacks=later.rollbacks - self.rollbacks,
            wal_bytes=later.wal_bytes - self.wal_bytes,
            tables={k: v for k, v in tables.items() if any(v)},
            write_transactions=later.xids - self.xids,
            wal_fsyncs=fsyncs,
        )


@dataclass(frozen=True)
class PgDelta:
    commits: int
    rollbacks: int
    wal_bytes: int  # server-wide: only this system runs while it is measured
    tables: dict[str, tuple[int, int, int]]
    write_transactions: int  # server-wide, transaction ids assigned
    wal_fsyncs: int | None  # server-wide, Postgres 18+

    @property
    def row_writes(self) -> int:
        return sum(sum(v) for v in self.tables.values())

    def per_job(self, jobs: int) -> dict[str, Any]:
        n = max(jobs, 1)
        return {
            "jobs": jobs,
            "commits_per_job": self.commits / n,
            "rollbacks_per_job": self.rollbacks / n,
            "row_writes_per_job": self.row_writes / n,
            "wal_bytes_per_job": self.wal_bytes / n,
            "write_transactions_per_job": self.write_transactions / n,
            "wal_fsyncs_per_job": None if self.wal_fsyncs is None else self.wal_fsyncs / n,
            "rows_per_job_by_table": {
                name: {"ins": i / n, "upd": u / n, "del": d / n}
                for name, (i, u, d) in sorted(self.tables.items())
            },
            "totals": {
                "commits": self.commits,
                "rollbacks": self.rollbacks,
                "row_writes": self.row_writes,
                "wal_bytes": self.wal_bytes,
                "write_transactions": self.write_transactions,
                "wal_fsyncs": self.wal_fsyncs,
            },
        }


class Monitor:
    """A connection to one measured database that takes snapshots."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        pg18 = conn.get_server_version().major >= 18
        self._sql = _SNAPSHOT_SQL.replace(
            "WAL_FSYNCS", _WAL_FSYNCS_PG18 if pg18 else "NULL::bigint"
        )

    async def snapshot(self) -> PgSnapshot:
        row = await self._conn.fetchrow(self._sql)
        assert row is not None
        tables = {k: (int(v[0]), int(v[1]), int(v[2])) for k, v in json.loads(row[3]).items()}
        fsyncs = None if row[5] is None else int(row[5])
        return PgSnapshot(int(row[0]), int(row[1]), int(row[2]), tables, int(row[4]), fsyncs)

    async def close(self) -> None:
        await self._conn.close()


class PgServer:
    """The Postgres server the benchmark uses; ``start`` it, then make databases on it."""

    def __init__(self, url: str, embedded: EmbeddedPostgres | None, data: Path | None) -> None:
        self._url = make_url(url).set(drivername="postgresql")
        self.embedded = embedded
        self._data = data
        self.postmaster_pid: int | None = None  # set by info()

    @classmethod
    def start(cls, url: str | None) -> PgServer:
        """Use the server at ``url``, or start an embedded one (fsync on) in a temp dir."""
        if url:
            return cls(url, None, None)
        data = Path(tempfile.mkdtemp(prefix="stepping-bench-pg-", dir="/var/tmp"))
        embedded = EmbeddedPostgres(data / "data", fsync=True)
        return cls(embedded.start(), embedded, data)

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)

    def url(self, database: str | None = None, driver: str = "postgresql") -> str:
        u = self._url.set(drivername=driver)
        if database is not None:
            u = u.set(database=database)
        return u.render_as_string(hide_password=False)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url())

    async def recreate(self, name: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await conn.close()

    async def drop(self, name: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def wait_idle(self, database: str, timeout: float = 30.0) -> None:
        """Until no backend but our monitor's is connected to ``database``."""
        conn = await self._admin()
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                others = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                    " AND application_name <> $2",
                    database,
                    _MONITOR_APP,
                )
                if others == 0:
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{others} sessions still on {database}")
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    async def monitor(self, database: str) -> Monitor:
        conn = await asyncpg.connect(
            self.url(database), server_settings={"application_name": _MONITOR_APP}
        )
        return Monitor(conn)

    def cpu_roots(self) -> dict[str, list[int]]:
        """``{"postgres": [postmaster pid]}`` when the server runs on this machine."""
        return {"postgres": [self.postmaster_pid]} if self.postmaster_pid else {}

    async def info(self) -> dict[str, Any]:
        """Version and the settings that decide commit cost, for the report."""
        conn = await self._admin()
        try:
            out: dict[str, Any] = {"embedded": self.embedded is not None}
            out["version"] = await conn.fetchval("SELECT version()")
            for name in (
                "fsync",
                "synchronous_commit",
                "wal_sync_method",
                "full_page_writes",
                "commit_delay",
                "shared_buffers",
                "max_connections",
            ):
                out[name] = await conn.fetchval(f"SHOW {name}")
            self.postmaster_pid = _parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
            out["postmaster_pid"] = self.postmaster_pid
            return out
        finally:
            await conn.close()


def _parent_pid(pid: int) -> int | None:
    """The postmaster is the backend's parent, if the server runs on this machine."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    if "(postgres)" not in line:  # a local pid that is not the server's backend
        return None
    return int(line.rpartition(")")[2].split()[1])
