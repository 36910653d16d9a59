"""The faults the run injects from outside, on a schedule, and the restarts after them.

Events (TM SIGKILL, participant SIGKILL, Postgres restart, proxy cut) are spread evenly
over the load window in a seeded order. A killed process is started again on the same
port after a short pause; a process that exits on its own (a bank crashing after a
commit, a TM that could not start) is noticed by a watcher and started again too. Every
restart is bounded in attempts and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.chaos._config import ChaosConfig
from bench.chaos._postgres import ChaosPostgres
from bench.chaos._procs import ChaosError, ManagedProcess, health
from bench.chaos._proxy import CutProxy

__all__ = ["ChaosMonkey", "Event"]

_START_TIMEOUT = 60.0
_START_ATTEMPTS = 30


@dataclass
class Event:
    """One thing that happened to the system, at ``at`` seconds into the load."""

    at: float
    kind: str
    target: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": round(self.at, 2)}


@dataclass
class ChaosMonkey:
    cfg: ChaosConfig
    tms: Sequence[ManagedProcess]
    participants: Sequence[ManagedProcess]
    pg: ChaosPostgres
    proxy: CutProxy
    events: list[Event] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    restart_seconds: dict[str, list[float]] = field(default_factory=dict)
    """Per process: how long each restart took from spawn to serving."""
    _t0: float = field(default_factory=time.monotonic)
    _busy: set[str] = field(default_factory=set)
    _scheduled: int = 0
    _fired: int = 0
    # One Postgres outage and one cut at a time: a second one waits for the first.
    _pg_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _cut_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def schedule(self) -> list[tuple[float, str]]:
        """(seconds into the load, kind) of every event, in a seeded order."""
        cfg = self.cfg
        kinds = (
            ["tm_kill"] * cfg.tm_kills
            + ["participant_kill"] * cfg.participant_kills
            + ["pg_restart"] * cfg.pg_restarts
            + ["proxy_cut"] * cfg.proxy_cuts
        )
        random.Random(cfg.seed).shuffle(kinds)
        step = cfg.window / (len(kinds) + 1)
        return [(step * (i + 1), kind) for i, kind in enumerate(kinds)]

    def _note(self, kind: str, target: str, note: str = "") -> None:
        self.events.append(Event(time.monotonic() - self._t0, kind, target, note))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self, t0: float, stop: asyncio.Event) -> None:
        """Runs the schedule from ``t0`` (monotonic) until it is done or ``stop`` is set."""
        self._t0 = t0
        schedule = self.schedule()
        self._scheduled = len(schedule)
        for at, kind in schedule:
            # Behind schedule (a TM kill waited for another replica), events fire at once,
            # but a stop is honoured between any two.
            delay = t0 + at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            await self._fire(kind)
            self._fired += 1

    def _up(self, pool: Sequence[ManagedProcess]) -> list[ManagedProcess]:
        return [p for p in pool if p.alive and p.name not in self._busy]

    async def _tm_victims(self) -> list[ManagedProcess]:
        """The TMs that may be killed now: never the last one serving (waits, bounded,
        for another to be back), so clients always have a replica to retry on."""
        for _ in range(int(_START_TIMEOUT / 0.1)):
            if len(up := self._up(self.tms)) >= 2:
                return up
            await asyncio.sleep(0.1)
        return []

    async def _fire(self, kind: str) -> None:
        rng = random.Random(f"{self.cfg.seed}:{len(self.events)}")
        if kind in ("tm_kill", "participant_kill"):
            up = await self._tm_victims() if kind == "tm_kill" else self._up(self.participants)
            if not up:
                self._note(kind + "_skipped", "-", "nothing up that may be killed")
                return
            victim = rng.choice(up)
            self._busy.add(victim.name)
            await victim.kill()
            self._note(kind, victim.name)
            down = (
                self.cfg.tm_down_seconds if kind == "tm_kill" else self.cfg.participant_down_seconds
            )
            self._spawn(self._bring_up(victim, after=down))
        elif kind == "pg_restart":
            self._note(kind, "postgres", f"down {self.cfg.pg_down_seconds:g}s")
            self._spawn(self._restart_pg())
        elif kind == "proxy_cut":
            self._note(kind, "proxy tm0<->postgres", f"cut {self.cfg.cut_seconds:g}s")
            self._spawn(self._cut())

    async def _probe(self, outage: str, tms: Sequence[ManagedProcess], after: float) -> None:
        """Notes what the TMs' health check says ``after`` seconds into an outage."""
        await asyncio.sleep(after)
        states = [f"{t.name} {await health(t.target)}" for t in tms if t.alive]
        self._note("health_during_outage", outage, f"{outage}: {', '.join(states)}")

    async def _restart_pg(self) -> None:
        async with self._pg_lock:
            probe = asyncio.create_task(self._probe("postgres down", self.tms, 1.0))
            try:
                await self.pg.restart(self.cfg.pg_down_seconds)
            finally:
                await asyncio.gather(probe, return_exceptions=True)
            self._note("pg_up", "postgres")

    async def _cut(self) -> None:
        probe_after = min(1.0, self.cfg.cut_seconds / 2)
        async with self._cut_lock:
            await self.proxy.cut()
            try:
                await self._probe("proxy cut", self.tms[:1], probe_after)
                await asyncio.sleep(self.cfg.cut_seconds - probe_after)
            finally:
                self.proxy.restore()
                self._note("proxy_restored", "proxy tm0<->postgres")

    async def _bring_up(self, proc: ManagedProcess, *, after: float) -> None:
        """Starts ``proc`` again after ``after`` seconds, retrying while it cannot start."""
        self._busy.add(proc.name)
        try:
            await asyncio.sleep(after)
            for attempt in range(1, _START_ATTEMPTS + 1):
                began = time.monotonic()
                try:
                    await proc.start(_START_TIMEOUT)
                    took = time.monotonic() - began
                    self.restart_seconds.setdefault(proc.name, []).append(took)
                    self._note("restarted", proc.name, f"serving {took:.1f}s after its start")
                    return
                except ChaosError as exc:
                    last = str(exc).strip().splitlines()[-1:] or [""]
                    self._note("start_failed", proc.name, f"attempt {attempt}: {last[0][:160]}")
                    await asyncio.sleep(1.0)
            self._note("gave_up_starting", proc.name)
        finally:
            self._busy.discard(proc.name)

    async def watch(self, stop: asyncio.Event) -> None:
        """Restarts processes that exited on their own, until ``stop`` (a bank may crash
        after a commit as long as steps run: through the drain too)."""
        while not stop.is_set():
            for proc in (*self.tms, *self.participants):
                if proc.name not in self._busy and proc.exited_unexpectedly():
                    code = proc.unexpected_exits[-1]
                    self._note("unexpected_exit", proc.name, f"exit status {code}")
                    self._spawn(self._bring_up(proc, after=0.2))
            await asyncio.sleep(0.2)

    @property
    def pending(self) -> bool:
        """Whether scheduled events are still to come (the load goes on until they are)."""
        return self._fired < self._scheduled

    async def close(self) -> None:
        """Cancels every restart still in flight (a run that ends early)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Waits for every restart in flight; then every process is up, the proxy whole."""
        deadline = time.monotonic() + _START_TIMEOUT * 2
        while self._background and time.monotonic() < deadline:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        self.proxy.restore()
        for proc in (*self.tms, *self.participants):
            if not proc.alive:
                await self._bring_up(proc, after=0.0)
        if not all(p.alive for p in (*self.tms, *self.participants)):
            raise ChaosError("could not bring every process back up after the chaos")
