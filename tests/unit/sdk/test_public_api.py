"""The SDK's public names: changing them breaks users, so they are pinned here."""

from __future__ import annotations

import participant_sdk
import participant_sdk.client
import participant_sdk.errors
import participant_sdk.migrations
import participant_sdk.testing


def test_root_exports_are_pinned() -> None:
    assert sorted(participant_sdk.__all__) == [
        "Endpoint",
        "Job",
        "JobAborted",
        "JobFailed",
        "ParticipantServer",
        "RetryLater",
        "RetryPolicy",
        "ServerTls",
        "StepFailed",
        "StepInfo",
        "SyncJob",
        "SyncTmClient",
        "TLSConfig",
        "TmClient",
        "barrier",
        "compensation",
        "info",
        "step",
    ]
    for name in participant_sdk.__all__:
        assert getattr(participant_sdk, name).__doc__, f"{name} has no docstring"


def test_public_modules_are_pinned() -> None:
    assert sorted(participant_sdk.client.__all__) == [
        "Attempt",
        "Job",
        "JobState",
        "JobStatus",
        "Mode",
        "StepState",
        "StepStatus",
        "TLSConfig",
        "TmClient",
    ]
    assert sorted(participant_sdk.errors.__all__) == [
        "GidConflict",
        "InvalidArgument",
        "InvalidState",
        "JobAborted",
        "JobError",
        "JobFailed",
        "JobRolledBack",
        "NotResumable",
        "PermissionDenied",
        "RetryLater",
        "StepFailed",
        "SteppingError",
        "TmError",
        "TmUnavailable",
        "TransactionNotFound",
        "Unauthenticated",
    ]
    assert sorted(participant_sdk.migrations.__all__) == [
        "BARRIER_TABLE_DDL",
        "barrier_table_ddl",
        "create_barrier_table",
        "drop_barrier_table",
    ]
    assert sorted(participant_sdk.testing.__all__) == ["StepEnvironment", "make_info", "run_step"]


def test_root_and_submodules_share_the_objects() -> None:
    assert participant_sdk.TmClient is participant_sdk.client.TmClient
    assert participant_sdk.StepFailed is participant_sdk.errors.StepFailed
    assert issubclass(participant_sdk.errors.TmError, participant_sdk.errors.SteppingError)
    assert issubclass(participant_sdk.StepFailed, participant_sdk.errors.SteppingError)


def test_barrier_table_ddl_is_dtms_table() -> None:
    ddl = participant_sdk.migrations.BARRIER_TABLE_DDL
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS stepping_barrier")
    assert "UNIQUE (gid, branch_id, op, barrier_id)" in ddl
