"""A private MariaDB server for the barrier's MySQL/MariaDB tests (Debian's mariadb-server,
installed by ``scripts/setup --dev``): its own data directory, socket and port, root
without a password on 127.0.0.1, stopped and deleted at the end of the session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

INSTALL_HINT = "run scripts/setup --dev as root (apt-get install mariadb-server)"


def mariadbd() -> str | None:
    """The server binary, if installed (Debian puts it in /usr/sbin)."""
    found = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    return found if found and shutil.which("mariadb-install-db") else None


def skip_or_fail(message: str) -> None:
    """Skips the test; under ``CI=true`` fails it (CI installs what the tests need)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MariaDB:
    """``start()`` → a server URL (``mysql+pymysql://root@127.0.0.1:<port>/``)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="stepping-test-mariadb-", dir="/var/tmp"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> str:
        data = self.dir / "data"
        log = self.dir / "server.log"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--user=root",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process = subprocess.Popen(
            [
                self.binary,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={self.dir / 'mysqld.sock'}",
                f"--pid-file={self.dir / 'mysqld.pid'}",
                f"--log-error={log}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                # tests survive a killed client, not a power loss
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                admin(server_url(f"mysql://root@127.0.0.1:{self.port}/"), "SELECT 1")
                break
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def server_url(url: str) -> sa.URL:
    """A MySQL URL without its database, on the blocking driver (pymysql)."""
    return sa.make_url(url).set(drivername="mysql+pymysql", database=None)


def admin(url: sa.URL, sql: str) -> None:
    """Runs one statement on the server (CREATE / DROP DATABASE, KILL)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
