"""Pure logic: backoff, settings precedence, request conversion (no I/O)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from stepping.tm.v1 import tm_pb2 as S

from tm_service.api import Converter
from tm_service.config import Settings, SettingsError
from tm_service.domain import Mode, RetryPolicy
from tm_service.errors import InvalidArgument


def _d(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def test_backoff_grows_and_caps() -> None:
    p = RetryPolicy(1.0, 2.0, 60.0, 0)
    assert [p.delay_after(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert p.delay_after(10_000) == 60.0  # no overflow on huge attempt counts
    assert not p.exhausted(1_000_000)
    assert RetryPolicy(1, 2, 60, 3).exhausted(3) and not RetryPolicy(1, 2, 60, 3).exhausted(2)


def test_settings_env_then_overrides() -> None:
    env = {
        "STEPPING_LEASE_SECONDS": "12.5",
        "STEPPING_LOG_JSON": "true",
        "STEPPING_LISTEN": "127.0.0.1:1",
    }
    s = Settings.load(env=env, overrides={"listen": "0.0.0.0:9", "max_steps": None})
    assert s.lease_seconds == 12.5 and s.log_json is True
    assert s.listen == "0.0.0.0:9"  # the flag wins over the environment
    assert s.max_steps == 100
    with pytest.raises(SettingsError, match="STEPPING_MAX_STEPS"):
        Settings.load(env={"STEPPING_MAX_STEPS": "many"})


def test_converter_applies_defaults_and_step_overrides() -> None:
    conv = Converter(Settings.load(env={}))
    new = conv.new_transaction(
        "g-1",
        [
            S.Step(action=S.Endpoint(target="h:1", method="/a.B/C")),
            S.Step(
                name="n",
                action=S.Endpoint(target="dns:///h:1", method="/a.B/C"),
                retry_policy=S.RetryPolicy(maximum_attempts=4),
                timeout=_d(9),
            ),
        ],
        S.TransactionOptions(
            mode=S.MODE_SAGA, retry_policy=S.RetryPolicy(initial_interval=_d(0.5))
        ),
        query_prepared=S.Endpoint(target="h:2"),
        database="",
        trace_context={},
    )
    assert new.options.mode is Mode.SAGA
    assert new.steps[0].name == "step-0" and new.steps[0].timeout == 3.0
    assert new.steps[0].retry_policy == RetryPolicy(0.5, 2.0, 60.0, 0)
    assert new.steps[1].retry_policy == RetryPolicy(0.5, 2.0, 60.0, 4)  # merged, not replaced
    assert new.steps[1].timeout == 9.0
    assert new.query_prepared is not None
    assert new.query_prepared.method == "/stepping.participant.v1.ParticipantService/QueryPrepared"


def test_fingerprint_tells_repeats_from_conflicts() -> None:
    conv = Converter(Settings.load(env={}))

    def fp(payload: bytes) -> bytes:
        return conv.new_transaction(
            "g",
            [S.Step(action=S.Endpoint(target="h:1", method="/a.B/C"), payload=payload)],
            S.TransactionOptions(),
            query_prepared=None,
            database="",
            trace_context={},
        ).fingerprint

    assert fp(b"x") == fp(b"x") != fp(b"y")


def test_max_interval_below_initial_is_rejected() -> None:
    conv = Converter(Settings.load(env={}))
    with pytest.raises(InvalidArgument) as err:
        conv.new_transaction(
            "g",
            [S.Step(action=S.Endpoint(target="h:1", method="/a.B/C"))],
            S.TransactionOptions(
                retry_policy=S.RetryPolicy(initial_interval=_d(5), maximum_interval=_d(1))
            ),
            query_prepared=None,
            database="",
            trace_context={},
        )
    assert err.value.field == "options.retry_policy.maximum_interval"
