"""Saga mode: a step failing for good compensates the steps already done, in reverse."""

from __future__ import annotations

import grpc
from stepping.tm.v1 import tm_pb2 as S

from tests.integration.helpers import dur, fast_retry, gid, step, tm_stub
from tests.integration.participant import FakeAnswer, Participant
from tm_service import TmServer


def _saga_step(p: Participant, name: str) -> S.Step:
    return step(
        p.target,
        f"/saga.v1.S/{name}",
        name.encode(),
        name=name,
        compensation=S.Endpoint(target=p.target, method=f"/saga.v1.S/Undo{name}"),
    )


async def test_failure_compensates_done_steps_in_reverse(
    tm: TmServer, participant: Participant
) -> None:
    participant.fail("/saga.v1.S/C", FakeAnswer(grpc.StatusCode.ABORTED, "no stock"))
    participant.fail("/saga.v1.S/UndoA", FakeAnswer(grpc.StatusCode.UNAVAILABLE, "blip"))
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[_saga_step(participant, n) for n in ("A", "B", "C", "D")],
                    options=S.TransactionOptions(mode=S.MODE_SAGA, retry_policy=fast_retry(0.05)),
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_FAILED
    assert "no stock" in tx.error
    assert [c.method.rsplit("/", 1)[1] for c in participant.calls] == [
        "A",
        "B",
        "C",
        "UndoC",
        "UndoB",
        "UndoA",
        "UndoA",
    ]
    undo = [c for c in participant.calls if "Undo" in c.method]
    assert {c.metadata["stepping-op"] for c in undo} == {"compensate"}
    assert undo[0].payload == b"C"  # the compensation gets the step's payload
    assert [s.status for s in tx.steps] == [
        S.STEP_STATUS_COMPENSATED,
        S.STEP_STATUS_COMPENSATED,
        S.STEP_STATUS_COMPENSATED,
        S.STEP_STATUS_PENDING,
    ]
    assert tx.mode == S.MODE_SAGA


async def test_saga_success_runs_no_compensation(tm: TmServer, participant: Participant) -> None:
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[_saga_step(participant, n) for n in ("A", "B")],
                    options=S.TransactionOptions(mode=S.MODE_SAGA),
                    wait_result=True,
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_SUCCEEDED
    assert [c.method for c in participant.calls] == ["/saga.v1.S/A", "/saga.v1.S/B"]


async def test_job_deadline_fails_the_job(tm: TmServer, participant: Participant) -> None:
    participant.fail("/d.v1.D/Slow", *[FakeAnswer(grpc.StatusCode.UNAVAILABLE)] * 100)
    async with tm_stub(tm.target) as stub:
        tx = (
            await stub.Submit(
                S.SubmitRequest(
                    gid=gid(),
                    steps=[step(participant.target, "/d.v1.D/Slow")],
                    options=S.TransactionOptions(
                        deadline=dur(0.5), retry_policy=fast_retry(0.1, 1.0)
                    ),
                    wait_result=True,
                    wait_timeout=dur(10),
                )
            )
        ).transaction
    assert tx.status == S.TRANSACTION_STATUS_FAILED
    assert "deadline" in tx.error
    assert 3 <= len(participant.calls) <= 7
