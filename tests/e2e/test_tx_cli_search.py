"""``stepping-tm tx ...`` as a user runs it (a real process) against a real TM.

Cancel and Resume: until the job-control RPCs are in the build the TM answers
UNIMPLEMENTED, which the CLI reports in one line; with them, the real outcome is checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg
import grpc
import pytest
from stepping.tm.v1 import tm_pb2 as S

from tests.integration.helpers import fast_retry, gid, step, tm_stub
from tests.integration.participant import FakeAnswer, Participant
from tm_service import TmServer

pytestmark = pytest.mark.e2e


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tm_service",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _submit(stub: object, target: str, method: str, tags: dict[str, str]) -> str:
    g = gid()
    await stub.Submit(  # type: ignore[attr-defined]
        S.SubmitRequest(
            gid=g,
            steps=[step(target, method, name="reserve")],
            options=S.TransactionOptions(retry_policy=fast_retry(attempts=1)),
            tags=tags,
            wait_result=True,
        )
    )
    return g


async def test_list_count_show_and_purge(
    tm: TmServer, participant: Participant, database_url: str
) -> None:
    long_error = "Card Declined: " + "x" * 200
    participant.fail("/a.v1.A/Pay", FakeAnswer(grpc.StatusCode.INTERNAL, long_error))
    async with tm_stub(tm.target) as stub:
        ok = await _submit(stub, participant.target, "/a.v1.A/Do", {"order_id": "123"})
        bad = await _submit(stub, participant.target, "/a.v1.A/Pay", {"order_id": "124"})
    env = {"STEPPING_TM_ADDRESS": tm.target}  # no --tm flag from here on

    code, out, err = await _cli("tx", "list", "--tag", "order_id=123", env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["GID", "STATUS"] and len(lines) == 2
    assert ok in lines[1] and "SUCCEEDED" in lines[1] and "UTC" in lines[1]

    code, out, err = await _cli(
        "tx", "list", "--status", "failed,submitted", "--error", "card declined", "--since", "1h",
        "--method", "/a.v1.A/Pay", "--step-target", participant.target, "--mode", "message",
        env=env,
    )  # fmt: skip
    assert code == 0, err
    row = out.splitlines()[1]
    assert bad in row and "FAILED" in row and row.endswith("…")  # cut, and says so

    code, out, err = await _cli("tx", "list", "--json", "--gid-prefix", bad, env=env)
    assert code == 0, err
    listed = json.loads(out)["transactions"]
    assert [(t["gid"], t["status"], t["mode"]) for t in listed] == [(bad, "FAILED", "MESSAGE")]
    assert listed[0]["tags"] == {"order_id": "124"}

    code, out, _ = await _cli("tx", "list", "--since", "1h", "--until", "2h", env=env)
    assert code == 1 and out == ""  # until before since: the TM's INVALID_ARGUMENT, one line

    code, out, err = await _cli("tx", "list", "--status", "DONE", env=env)
    assert code == 2 and out == ""
    assert "unknown status 'DONE'; valid: PREPARED, SUBMITTED, SUCCEEDED" in err
    assert "Traceback" not in err

    code, out, err = await _cli("tx", "count", "--since", "1h", env=env)
    assert code == 0, err
    counts = {r.split()[0]: r.split()[1] for r in out.splitlines()[1:]}
    assert counts == {"SUCCEEDED": "1", "FAILED": "1", "TOTAL": "2"}

    code, out, err = await _cli("tx", "show", bad, env=env)
    assert code == 0, err
    assert "tags:     order_id=124" in out and "reserve" in out and "FAILED" in out

    code, out, err = await _cli("tx", "purge", "--older-than", "1h", "--dry-run", env=env)
    assert code == 0 and out.strip() == "would delete 0 transactions (dry run)", err
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "UPDATE stepping_transactions SET finish_time = now() - interval '8 days'"
            " WHERE gid = $1",
            ok,
        )
    finally:
        await conn.close()
    code, out, err = await _cli(
        "tx", "purge", "--older-than", "7d", "--status", "SUCCEEDED", env=env
    )
    assert code == 0 and out.strip() == "deleted 1 transactions", err
    code, out, err = await _cli("tx", "purge", "--older-than", "7d", "--status", "SUBMITTED")
    assert code == 2 and "valid: SUCCEEDED, ABORTED, FAILED" in err
    code, out, _ = await _cli("tx", "list", "--json", env=env)
    assert [t["gid"] for t in json.loads(out)["transactions"]] == [bad]


async def test_errors_are_one_line(tm: TmServer) -> None:
    code, _, err = await _cli("tx", "list", "--tm", "127.0.0.1:1")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("stepping-tm: UNAVAILABLE: cannot reach the TM at 127.0.0.1:1")
    code, _, err = await _cli("tx", "purge", "--older-than", "soon", "--tm", tm.target)
    assert code == 2 and "--older-than: 'soon' is not a duration" in err
    code, _, err = await _cli("tx", "show", "nope", "--target", tm.target)  # --target still works
    assert code == 1 and err.strip().startswith("stepping-tm: NOT_FOUND:")
    code, out, _ = await _cli("--version")
    assert code == 0 and out.startswith("stepping-tm ")


async def test_no_broken_pipe_traceback_under_head(tm: TmServer, participant: Participant) -> None:
    async with tm_stub(tm.target) as stub:
        for _ in range(30):
            await _submit(stub, participant.target, "/a.v1.A/Do", {})
    proc = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m tm_service tx list --tm {tm.target} --json | head -c 10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert len(out) == 10
    assert b"Traceback" not in err and b"BrokenPipe" not in err


async def test_cancel_and_resume(tm: TmServer, participant: Participant) -> None:
    """Needs the control branch for the real outcome (else: UNIMPLEMENTED, one line)."""
    g = gid()
    async with tm_stub(tm.target) as stub:
        await stub.Prepare(
            S.PrepareRequest(
                gid=g,
                steps=[step(participant.target, "/a.v1.A/Do")],
                query_prepared=S.Endpoint(target=participant.target),
            )
        )
    code, out, err = await _cli(
        "tx", "cancel", g, "--reason", "operator says no", "--tm", tm.target
    )
    if "UNIMPLEMENTED" in err:
        assert code == 1 and err.count("\n") == 1
    else:
        assert code == 0 and out.strip() == f"{g}: ABORTED", err
    code, out, err = await _cli("tx", "resume", g, "--tm", tm.target)
    # An aborted job cannot be resumed: FAILED_PRECONDITION (or UNIMPLEMENTED before control).
    assert code == 1 and err.count("\n") == 1
    assert "FAILED_PRECONDITION" in err or "UNIMPLEMENTED" in err
