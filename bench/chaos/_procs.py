"""Child processes that the run starts, SIGKILLs and restarts on the same port.

Each child logs to one file in the run directory (appended across restarts) and is ready
when it answers the gRPC health check with SERVING on its port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench._procs import free_port

__all__ = [
    "ChaosError",
    "Launch",
    "ManagedProcess",
    "child_env",
    "free_port",
    "health",
    "python_command",
    "serving",
    "tm_command",
]

ROOT = Path(__file__).resolve().parents[2]


class ChaosError(RuntimeError):
    """The run could not go on (a process did not start, the run hit its time limit)."""


def tm_command() -> list[str]:
    """``stepping-tm`` of the venv, as a user runs it (else the module)."""
    exe = Path(sys.executable).with_name("stepping-tm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tm_service"]


def python_command(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def child_env() -> dict[str, str]:
    """The environment of a child: the run's, without STEPPING_* / OTEL_*, the repo importable."""
    # A child reads STEPPING_* / OTEL_* only from what the run gives it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPPING_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "gen" / "python"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    return env


@dataclass(frozen=True)
class Launch:
    """How to start one incarnation of a child."""

    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ManagedProcess:
    """A child on a fixed port; ``launch(n)`` describes its n-th incarnation."""

    name: str
    port: int
    log: Path
    launch: Callable[[int], Launch]
    proc: asyncio.subprocess.Process | None = None
    incarnations: int = 0
    kills: int = 0
    start_failures: int = 0
    unexpected_exits: list[int] = field(default_factory=list)
    _killed: bool = field(default=False, init=False, repr=False)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def exited_unexpectedly(self) -> bool:
        """True once per exit that the run did not cause (recorded with its status)."""
        if self.proc is None or self.proc.returncode is None or self._killed:
            return False
        self.unexpected_exits.append(self.proc.returncode)
        self._killed = True  # counted; the next start resets it
        return True

    async def start(self, timeout: float) -> None:
        """Starts an incarnation and waits until it serves; ChaosError if it does not."""
        if self.alive:
            return
        self.incarnations += 1
        spec = self.launch(self.incarnations)
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} start #{self.incarnations}\n".encode())
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={**child_env(), **spec.env},
                cwd=str(ROOT),
                start_new_session=True,  # a SIGINT to the run is not sent to it
            )
        self._killed = False
        deadline = time.monotonic() + timeout
        try:
            while not await serving(self.target):
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    self.start_failures += 1
                    await self.kill(count=False)
                    raise ChaosError(f"{self.name} did not start:\n{self.log_tail()}")
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:  # the run is ending: leave no child behind
            await self.kill(count=False)
            raise

    async def kill(self, *, count: bool = True) -> None:
        """SIGKILL (the chaos), and wait until it is gone."""
        self._killed = True
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if count:
            self.kills += 1

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        self._killed = True
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill(count=False)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def health(target: str) -> str:
    """The gRPC health status name ``target`` answers, or the code of the failed check."""
    async with grpc.aio.insecure_channel(target) as ch:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.aio.AioRpcError as err:
            return err.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))


async def serving(target: str) -> bool:
    """Whether ``target`` answers the gRPC health check with SERVING."""
    return await health(target) == "SERVING"
