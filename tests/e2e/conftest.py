"""TM processes started (and killed) as a user would: ``python -m tm_service serve``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest


@dataclass
class TmProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("TM did not exit in time")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)


class SpawnTm(Protocol):
    async def __call__(
        self,
        database_url: str,
        *,
        env: dict[str, str] | None = None,
        ready: bool = True,
        **settings: Any,
    ) -> TmProcess: ...


@pytest.fixture
def spawn_tm() -> Iterator[SpawnTm]:
    procs: list[TmProcess] = []
    logs = Path(tempfile.mkdtemp(prefix="stepping-e2e-"))

    async def spawn(
        database_url: str,
        *,
        env: dict[str, str] | None = None,
        ready: bool = True,
        **settings: Any,
    ) -> TmProcess:
        """Start a TM; return once it serves (``ready=False``: once its port is open)."""
        args = [
            sys.executable,
            "-m",
            "tm_service",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--poll-interval-seconds",
            "0.1",
            "--lease-seconds",
            "2",
            "--min-retry-interval-seconds",
            "0.01",
            "--log-level",
            "INFO",
        ]
        for key, value in settings.items():
            args += ["--" + key.replace("_", "-"), str(value)]
        log = logs / f"tm-{len(procs)}.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("STEPPING_", "OTEL_"))}
        environ.update(env or {})
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environ)
        tm = TmProcess(proc, log)
        procs.append(tm)
        deadline = time.monotonic() + 60
        started = r"listening on .* \(port (\d+)\)" if ready else r"gRPC on port (\d+)"
        while True:
            m = re.search(started, tm.log_text())
            if m:
                tm.port = int(m.group(1))
                return tm
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"TM did not start:\n{tm.log_text()}")
            await asyncio.sleep(0.05)

    yield spawn
    for tm in procs:
        if tm.proc.poll() is None:
            tm.proc.kill()
            tm.proc.wait(10)
