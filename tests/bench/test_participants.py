"""Both kinds of benchmark participant answer any method OK with an empty body."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from bench._procs import start_participants


@pytest.mark.parametrize("kind", ["python", "go"])
async def test_participant_answers_any_method(kind: str, tmp_path: Path) -> None:
    if kind == "go" and shutil.which("go") is None:
        pytest.skip("no Go toolchain (scripts/install-stub-toolchains installs it)")
    participants = await start_participants(2, tmp_path, kind)
    try:
        for _, port in participants:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                for method in ("/bench.Participant/Step", "/any.v1.Other/Thing"):
                    call = channel.unary_unary(
                        method, request_serializer=None, response_deserializer=None
                    )
                    assert await call(b"payload \x00\x01", timeout=10) == b""
    finally:
        for child, _ in participants:
            await child.stop()
