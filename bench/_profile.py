"""``--profile``: py-spy samples the TM during the measured window; a summary of it.

py-spy reads the TM's Python stacks from outside (ptrace; ``--nonblocking`` so the TM
is not paused) and writes collapsed stacks. The summary ranks functions by *self*
samples (the leaf: where the interpreter was) and by *inclusive* samples (anywhere on
the stack; the entry point, the event loop and other stdlib frames left out), and sums
self samples per package, which is the quickest answer to "where does the CPU go".
Self time in ``Runner.run`` is the event loop's own C code (uvloop: I/O, callbacks).
Only Python frames are seen: time in grpc's C-core threads and in C extensions shows
under the Python function that called them, or not at all.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["Profiler", "summarize"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")
_SITE = re.compile(r".*/(?:site|dist)-packages/(?P<pkg>[^/]+)")


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def package_of(path: str) -> str:
    """A frame's package: the site-packages top level, the repo package, or the stdlib."""
    m = _SITE.match(path)
    if m:
        return m.group("pkg").removesuffix(".py")
    for own in ("tm_service", "participant_sdk", "stepping"):
        if f"/{own}/" in path or path.startswith(f"{own}/"):
            return own
    if "/lib/python3" in path:
        tail = path.split("/lib/python3", 1)[1].split("/", 2)
        return "stdlib:" + (tail[1].removesuffix(".py") if len(tail) > 1 else "?")
    return Path(path).stem or "?"


def _short(func: str, path: str) -> str:
    m = _SITE.match(path)
    if m:
        path = path[m.start("pkg") :]
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    else:
        for own in ("tm_service/", "participant_sdk/"):
            if own in path:
                path = own + path.split(own, 1)[1]
    return f"{func} ({path})"


def _is_frame_noise(func: str, path: str) -> bool:
    """Frames on (nearly) every stack: the entry point, the event loop, thread starts."""
    return (
        func == "<module>"
        or package_of(path).startswith("stdlib:")
        or path.endswith(("tm_service/cli.py", "tm_service/__main__.py"))
    )


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """The summary of py-spy's raw (collapsed) output."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    pkg_counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for part in stack.split(";"):
            m = _FRAME.match(part)
            if m:
                frames.append((m.group("func"), m.group("file")))
        if not frames:
            continue
        total += count
        func, path = frames[-1]
        self_counts[_short(func, path)] += count
        pkg_counts[package_of(path)] += count
        for name in {_short(f, p) for f, p in frames if not _is_frame_noise(f, p)}:
            incl_counts[name] += count

    def ranked(c: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"name": k, "samples": v, "share": v / total if total else 0.0}
            for k, v in c.most_common(top)
        ]

    return {
        "samples": total,
        "self": ranked(self_counts),
        "inclusive": ranked(incl_counts),
        "packages": ranked(pkg_counts),
    }


class Profiler:
    """A py-spy recording of one process tree for a fixed duration."""

    def __init__(self, proc: asyncio.subprocess.Process, output: Path, rate: int) -> None:
        self._proc = proc
        self.output = output
        self.rate = rate

    @classmethod
    async def start(cls, pid: int, duration: float, output: Path, rate: int = 100) -> Profiler:
        exe = _py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (it is in the bench extra)")
        args = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(max(1, round(duration))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--full-filenames",
            "--nolineno",
            "--nonblocking",
            "--output",
            str(output),
        ]
        log = output.with_suffix(".log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
        )
        log.close()
        return cls(proc, output, rate)

    async def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        await asyncio.wait_for(self._proc.wait(), timeout)
        if self._proc.returncode != 0 or not self.output.exists():
            log = self.output.with_suffix(".log")
            text = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            return {"error": f"py-spy exited {self._proc.returncode}: {text}"}
        summary = summarize(self.output.read_text(errors="replace"))
        summary["rate"] = self.rate
        summary["raw"] = str(self.output)
        return summary
