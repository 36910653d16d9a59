"""The auth file, its principals and roles, and resolving a caller from its credentials."""

from __future__ import annotations

import hashlib
import logging
import os
import tomllib
from pathlib import Path

import pytest

from tm_service.auth import (
    Authenticator,
    AuthFileError,
    Principal,
    PrincipalFile,
    Principals,
    Role,
    new_token_text,
    peer_identities,
)
from tm_service.errors import Unauthenticated


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


AUTH = f"""
[[principal]]
name = "orders"
roles = ["client"]
token_sha256 = ["{_sha("orders-token")}", "{_sha("orders-token-2")}"]
tls_identities = ["spiffe://prod/ns/orders/sa/orders"]

[[principal]]
name = "ops"
roles = ["reader", "client"]
token_sha256 = ["{_sha("ops-token")}"]
tls_identities = ["ops.example", "ops-cn"]
"""


def test_tokens_and_identities_name_principals() -> None:
    known = Principals.parse(AUTH)
    orders = known.by_token("orders-token")
    assert orders == Principal("orders", frozenset({Role.CLIENT}))
    assert known.by_token("orders-token-2") == orders
    assert known.by_token("orders-token ") is None
    assert known.by_token("") is None
    assert known.by_identity(["nope", "spiffe://prod/ns/orders/sa/orders"]) == orders
    ops = known.by_identity(["ops-cn"])
    assert ops is not None and ops.roles == {Role.READER, Role.CLIENT}
    assert known.by_identity([]) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[principal]\n", "not TOML"),
        ('[[principal]]\nroles = ["client"]\n', "name"),
        ('[[principal]]\nname = "a"\n', "roles"),
        ('[[principal]]\nname = "a"\nroles = ["root"]\n', "role other than"),
        ('[[principal]]\nname = "a"\nroles = ["client"]\ntoken_sha256 = ["abc"]\n', "SHA-256"),
        ('[[principal]]\nname = "a"\nroles = "client"\n', "list of strings"),
        (
            '[[principal]]\nname = "a"\nroles = ["client"]\n'
            '[[principal]]\nname = "a"\nroles = ["reader"]\n',
            "twice",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(AuthFileError, match=words):
        Principals.parse(text)


def test_roles_decide_what_a_principal_may_touch() -> None:
    client = Principal("orders", frozenset({Role.CLIENT}))
    reader = Principal("audit", frozenset({Role.READER}))
    admin = Principal("root", frozenset({Role.ADMIN}))
    assert client.may_create and admin.may_create and not reader.may_create
    assert client.may_write("orders") and not client.may_write("billing")
    assert not client.may_write(None)  # an unknown (or ownerless) job: denied alike
    assert client.may_read("orders") and not client.may_read("billing")
    assert reader.may_read("billing") and reader.may_read(None)
    assert not reader.may_write("audit")
    assert admin.may_write("billing") and admin.may_write(None)
    assert reader.reads_all and admin.reads_all and not client.reads_all


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_the_file_is_reread_when_it_changes_at_most_once_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(AUTH)
    clock = Clock()
    auth = PrincipalFile(str(path), monotonic=clock)
    assert auth.current().by_token("orders-token") is not None
    new = f'[[principal]]\nname = "new"\nroles = ["admin"]\ntoken_sha256 = ["{_sha("n")}"]\n'
    path.write_text(new)
    _bump_mtime(path)
    clock.now = 0.5
    assert auth.current().by_token("n") is None  # not looked at yet
    clock.now = 1.0
    assert auth.current().by_token("n") == Principal("new", frozenset({Role.ADMIN}))
    assert auth.current().by_token("orders-token") is None
    # A broken edit keeps the previous principals, and says so once.
    path.write_text("[[principal]\n")
    _bump_mtime(path)
    clock.now = 2.0
    with caplog.at_level(logging.ERROR):
        assert auth.current().by_token("n") is not None
        clock.now = 3.0
        assert auth.current().by_token("n") is not None
    assert [r.levelname for r in caplog.records].count("ERROR") == 1
    assert "not TOML" in caplog.text
    path.unlink()
    clock.now = 4.0
    assert auth.current().by_token("n") is not None


def test_a_missing_or_broken_file_stops_the_tm_at_start(tmp_path: Path) -> None:
    with pytest.raises(AuthFileError, match="No such file"):
        PrincipalFile(str(tmp_path / "missing.toml"))
    (tmp_path / "bad.toml").write_text("x = ")
    with pytest.raises(AuthFileError, match=r"bad\.toml"):
        PrincipalFile(str(tmp_path / "bad.toml"))


def test_the_caller_is_found_by_token_first_then_by_certificate(tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(AUTH)
    auth = Authenticator(PrincipalFile(str(path)))
    orders_cert = ["spiffe://prod/ns/orders/sa/orders"]
    assert auth.authenticate([("authorization", "Bearer ops-token")], orders_cert).name == "ops"
    assert auth.authenticate([("authorization", "bearer  ops-token ")], []).name == "ops"
    assert auth.authenticate([("x-other", "1")], orders_cert).name == "orders"
    for metadata, identities in [
        ([], []),
        ([], ["spiffe://prod/ns/billing/sa/billing"]),
        ([("authorization", "Bearer wrong")], orders_cert),  # a wrong token is never ignored
        ([("authorization", "Basic b3JkZXJz")], []),
        ([("authorization", "Bearer ")], []),
    ]:
        with pytest.raises(Unauthenticated):
            auth.authenticate(metadata, identities)


def test_identities_come_from_the_verified_client_certificate() -> None:
    context = {
        "transport_security_type": [b"ssl"],
        "x509_common_name": [b"orders-cn"],
        "peer_uri": [b"spiffe://prod/ns/orders/sa/orders"],
        "peer_dns": [b"orders.example"],
    }
    assert peer_identities(context) == [
        "spiffe://prod/ns/orders/sa/orders",
        "orders.example",
        "orders-cn",
    ]
    assert peer_identities({}) == []


def test_new_token_prints_a_token_and_the_toml_that_accepts_it() -> None:
    text = new_token_text("orders", ["client", "reader"])
    first, rest = text.split("\n", 1)
    token = first.removeprefix("token: ")
    assert len(token) >= 40
    data = tomllib.loads(rest)
    assert data["principal"][0]["roles"] == ["client", "reader"]
    known = Principals.parse(rest)
    assert known.by_token(token) == Principal("orders", frozenset({Role.CLIENT, Role.READER}))
    assert token not in rest  # only the hash goes into the file
    assert new_token_text("x", []) != new_token_text("x", [])
