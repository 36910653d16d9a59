"""The processes of a run: participants, the TM, and the load processes.

Every child's stderr goes to a log file in the run directory; a child that fails to
start raises with the tail of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = [
    "BenchError",
    "Child",
    "LoadProcess",
    "free_port",
    "migrate_tm",
    "run_once",
    "start_participants",
    "start_tm",
]

_ROOT = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """The benchmark could not run (a process did not start, a run did not finish)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # The TM reads STEPPING_* only from what we pass; the bench package is importable.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPPING_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(_ROOT), str(_ROOT / "gen" / "python"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env.update(extra or {})
    return env


class Child:
    """One child process with piped stdout (line protocol) and stderr in a log file."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(
        cls,
        name: str,
        args: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        stdout_to_log: bool = False,
    ) -> Child:
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=err if stdout_to_log else asyncio.subprocess.PIPE,
                stderr=err,
                env=_env(env),
                cwd=str(_ROOT),
            )
        return cls(name, proc, log)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line starting with ``prefix``."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), max(remaining, 0.01))
            except TimeoutError:
                raise BenchError(
                    f"{self.name}: no {prefix!r} within {timeout:.0f}s\n{self.log_tail()}"
                ) from None
            if not line:
                await self.proc.wait()
                raise BenchError(
                    f"{self.name} exited ({self.proc.returncode}) before {prefix!r}\n"
                    f"{self.log_tail()}"
                )
            text = line.decode().rstrip("\n")
            if text.startswith(prefix):
                return text[len(prefix) :].strip()

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


GO_PARTICIPANT = Path(__file__).with_name("participant_go") / "main.go"


def build_go_participant(work: Path) -> Path:
    """Compile bench/participant_go against Debian's grpc-go (GOPATH mode, offline)."""
    gopath = work / "gopath"
    src = gopath / "src" / "benchparticipant"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(GO_PARTICIPANT, src / "main.go")
    binary = work / "participant-go"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:/usr/share/gocode",
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOCACHE": str(work / "gocache"),
    }
    done = subprocess.run(
        ["go", "build", "-o", str(binary), "benchparticipant"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(
            "could not build the Go participant (run scripts/install-stub-toolchains "
            f"for Go and grpc-go):\n{done.stderr[-2000:]}"
        )
    return binary


async def start_participants(
    count: int, logs: Path, kind: str = "python"
) -> list[tuple[Child, int]]:
    """``count`` participant processes (``kind`` python or go); each with its port."""
    if kind == "go":
        binary = await asyncio.to_thread(build_go_participant, logs)
        command = [str(binary), "0"]
    else:
        command = [sys.executable, "-m", "bench._participant"]
    children = await asyncio.gather(
        *(
            Child.start(f"participant-{i}", command, logs / f"participant-{i}.log")
            for i in range(count)
        )
    )
    ports = await asyncio.gather(*(c.expect("READY", 30) for c in children))
    return [(c, int(p)) for c, p in zip(children, ports, strict=True)]


def _tm_command() -> list[str]:
    # The venv's entry point, as a user runs it; else the module.
    exe = Path(sys.executable).with_name("stepping-tm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tm_service"]


async def start_tm(
    *,
    database_url: str,
    workers: int,
    log: Path,
    tm_env: Mapping[str, str],
    timeout: float = 60.0,
) -> tuple[Child, str]:
    """``stepping-tm serve`` on a free port; returns it once every worker serves."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    env = {
        "STEPPING_LISTEN": target,
        "STEPPING_DATABASE_URL": database_url,
        "STEPPING_WORKERS": str(workers),
        **tm_env,
    }
    child = await Child.start("TM", [*_tm_command(), "serve"], log, env=env, stdout_to_log=True)
    deadline = time.monotonic() + timeout
    healthy_since: float | None = None
    while True:
        if await _serving(target):
            now = time.monotonic()
            healthy_since = healthy_since or now
            # Each worker logs its "listening"; a TM that stopped saying so is taken
            # as up a few seconds after the first health answer.
            listening = child.log_tail(1 << 20).count("stepping TM listening on")
            if listening >= workers or now - healthy_since > 5:
                return child, target
        if child.proc.returncode is not None or time.monotonic() > deadline:
            await child.stop()
            raise BenchError(f"the TM did not start:\n{child.log_tail()}")
        await asyncio.sleep(0.1)


async def run_once(name: str, args: Sequence[str], log: Path, timeout: float = 120.0) -> None:
    """Run ``python <args>`` to completion; raise with its log if it fails."""
    child = await Child.start(name, [sys.executable, *args], log, stdout_to_log=True)
    try:
        code = await asyncio.wait_for(child.proc.wait(), timeout)
    except TimeoutError:
        await child.stop()
        raise BenchError(f"{name} did not finish in {timeout:.0f}s\n{child.log_tail()}") from None
    if code != 0:
        raise BenchError(f"{name} failed ({code})\n{child.log_tail()}")


async def migrate_tm(database_url: str, log: Path) -> None:
    """``stepping-tm db upgrade``: the TM's schema, by a process that then exits."""
    await run_once(
        "stepping-tm db upgrade",
        ["-m", "tm_service", "db", "upgrade", "--database-url", database_url],
        log,
    )


async def _serving(target: str) -> bool:
    async with grpc.aio.insecure_channel(target) as ch:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


class LoadProcess:
    """A load process (``bench._client`` or ``bench._dbos_run``) driven by its protocol."""

    def __init__(self, child: Child) -> None:
        self.child = child

    @classmethod
    async def start(
        cls, name: str, module: str, config_json: str, log: Path, ready_timeout: float = 60
    ) -> LoadProcess:
        child = await Child.start(
            name, [sys.executable, "-m", module, config_json], log, stdin=True
        )
        await child.expect("READY", ready_timeout)
        return cls(child)

    async def go(self) -> float:
        """Start the load; returns its start time (monotonic clock)."""
        await self.child.send("go")
        return float(await self.child.expect("START", 30))

    async def done(self, timeout: float) -> dict[str, Any]:
        """The summary, once the load has stopped (the process stays until ``exit``)."""
        summary: dict[str, Any] = json.loads(await self.child.expect("DONE", timeout))
        return summary

    async def exit(self, timeout: float = 60.0) -> None:
        await self.child.send("exit")
        try:
            await asyncio.wait_for(self.child.proc.wait(), timeout)
        except TimeoutError:
            await self.child.stop()
