"""The stepping-signature layout (v1), pinned by fixed vectors computed outside Python.

The expected values were computed with openssl, from the layout in contract.py and
the proto comments:

    h=$(printf hello | sha256sum | cut -c1-64)
    printf 'stepping-signature-v1\\ng-1\\n2\\naction\\n3\\n%s' "$h" \\
      | openssl dgst -sha256 -hmac secret-key
"""

from __future__ import annotations

import pytest
from stepping import contract
from stepping.contract import CallInfo
from stepping.participant.v1 import participant_pb2

KEY = b"secret-key"
STEP_SIGNATURE = "v1=868f2db59dffb79888d46e6c1c10daecf9752ed4ee60f7607b0df9bce4949ae1"
QUERY_PREPARED_SIGNATURE = "v1=8c897514e4fb1d4e858031d629bc77e3229446937b9e89bb14fbbd0e7886333a"


def test_the_signed_bytes_are_six_newline_joined_lines() -> None:
    got = contract.signing_input(gid="g-1", step_index=2, op="action", attempt=3, payload=b"hello")
    assert got == (
        b"stepping-signature-v1\ng-1\n2\naction\n3\n"
        b"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )


def test_a_step_call_signature_matches_the_fixed_vector() -> None:
    got = contract.sign_call(KEY, gid="g-1", step_index=2, op="action", attempt=3, payload=b"hello")
    assert got == STEP_SIGNATURE


def test_a_query_prepared_signature_has_empty_step_index_and_attempt() -> None:
    payload = participant_pb2.QueryPreparedRequest(gid="g-1").SerializeToString()
    assert payload == b"\n\x03g-1"
    info = CallInfo(gid="g-1", op=contract.OP_QUERY_PREPARED)
    assert info.signature(KEY, payload) == QUERY_PREPARED_SIGNATURE
    assert contract.signing_input(
        gid="g-1", step_index=None, op="query_prepared", attempt=None, payload=payload
    ).split(b"\n")[1:5] == [b"g-1", b"", b"query_prepared", b""]


def test_the_metadata_carries_the_signature_after_the_step_keys() -> None:
    info = CallInfo(
        gid="g-1",
        op="action",
        step_index=2,
        step_name="Debit",
        attempt=3,
        headers={"x-tenant": "t1"},
    )
    md = info.metadata(signing_key=KEY, payload=b"hello")
    assert md[5] == (contract.KEY_SIGNATURE, STEP_SIGNATURE)
    assert md[-1] == ("x-tenant", "t1")
    assert contract.KEY_SIGNATURE not in dict(info.metadata())


@pytest.mark.parametrize(
    ("value", "change"),
    [
        (STEP_SIGNATURE, {}),
        (STEP_SIGNATURE.upper(), None),
        ("v2=" + STEP_SIGNATURE[3:], None),
        ("", None),
        (None, None),
        (STEP_SIGNATURE, {"attempt": 4}),
        (STEP_SIGNATURE, {"step_index": 1}),
        (STEP_SIGNATURE, {"op": "compensate"}),
        (STEP_SIGNATURE, {"gid": "g-2"}),
        (STEP_SIGNATURE, {"payload": b"hello!"}),
    ],
)
def test_verify_accepts_only_the_exact_call(
    value: str | None, change: dict[str, object] | None
) -> None:
    call: dict[str, object] = {
        "gid": "g-1",
        "step_index": 2,
        "op": "action",
        "attempt": 3,
        "payload": b"hello",
    }
    call.update(change or {})
    ok = contract.verify_signature(KEY, value, **call)  # type: ignore[arg-type]
    assert ok is (change == {})


def test_a_key_is_its_bytes_without_the_trailing_newline() -> None:
    assert contract.signing_key(b"secret-key\n") == KEY
    assert contract.signing_key("secret-key\r\n") == KEY
    assert contract.signing_key(KEY) == KEY
    with pytest.raises(ValueError, match="empty"):
        contract.signing_key(b"\n")
