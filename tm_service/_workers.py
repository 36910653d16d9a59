"""``serve --workers N``: N TM processes sharing one port (SO_REUSEPORT), one pod's cores.

Only these workers set SO_REUSEPORT (``serve --pool-worker``): a lone TM binds its
address exclusively, so a second one on a taken address fails to start.

The parent starts the embedded Postgres (if no URL is set) and migrates once (waiting
for the database as long as it takes), then
runs N children that each load the same settings from ``STEPPING_*`` variables, with
their own replica id (and Prometheus port ``metrics_port + i``: a port serves one
process). SIGTERM/SIGINT are forwarded; each child drains gracefully.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tm_service._db_health import migrate_when_reachable
from tm_service._listen import check_address_free
from tm_service.config import ENV_PREFIX, Settings
from tm_service.store import EmbeddedPostgres
from tm_service.telemetry import prometheus_port

__all__ = ["serve_workers"]

_log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _child_env(settings: Settings, index: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        env[ENV_PREFIX + f.name.upper()] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    env[ENV_PREFIX + "WORKERS"] = "1"
    env[ENV_PREFIX + "MIGRATE_ON_START"] = "false"
    env[ENV_PREFIX + "REPLICA_ID"] = f"{settings.replica_id}-w{index}"
    if settings.metrics_port or "prometheus" in env.get("OTEL_METRICS_EXPORTER", ""):
        # One scrape endpoint per process: worker i serves port + i.
        env[ENV_PREFIX + "METRICS_PORT"] = str(prometheus_port(settings, env) + index)
    return env


def _die_with(parent: int) -> Callable[[], None]:
    """Run in each child before exec: SIGTERM it when the parent dies (Linux).

    A pool whose parent is SIGKILLed (a supervisor, a test, the OOM killer) would
    otherwise leave its workers running and holding the port.
    """

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return arm


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` TM processes until a signal; returns the exit code."""
    check_address_free(settings.listen)  # taken by a TM outside this pool: stop here
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if not url:
        embedded = EmbeddedPostgres(Path(settings.embedded_pg_dir), port=settings.embedded_pg_port)
        url = embedded.start()
    try:
        # Waits for the database (one log line per attempt) until it is there or a signal.
        if settings.migrate_on_start and not asyncio.run(migrate_when_reachable(url)):
            return 0
        shared = dataclasses.replace(settings, database_url=url)
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "tm_service", "serve", "--pool-worker"],
                env=_child_env(shared, i),
                # Safe here: the parent runs no threads (asyncio.run joined its executor).
                preexec_fn=_die_with(os.getpid()) if sys.platform == "linux" else None,  # noqa: PLW1509
            )
            for i in range(settings.workers)
        ]
        stopping = False

        def forward(signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        _log.info("started %d workers: %s", len(children), [c.pid for c in children])
        code = 0
        while any(c.poll() is None for c in children):
            if not stopping and any(c.poll() is not None for c in children):
                _log.error("a worker exited; stopping the others")
                code = 1
                forward(signal.SIGTERM, None)
            time.sleep(0.2)
        if any(c.returncode not in (0, -signal.SIGTERM) for c in children):
            code = 1
        return code
    finally:
        if embedded is not None:
            embedded.stop()
