"""The target policy: the allow-list forms, the always-denied set, the TM's own address."""

from __future__ import annotations

import ipaddress

import pytest
from stepping.tm.v1 import tm_pb2 as S

from tm_service.api import Converter
from tm_service.config import Settings, SettingsError
from tm_service.errors import InvalidArgument
from tm_service.targets import TargetPolicy, TargetRefused

ALLOWED = "*.bank.svc.cluster.local:50051, orders:*, 10.0.0.0/8, 10.1.2.3/32:50051, [fd00::1]:7"
OWN = 36790


def _policy(allowed: str = "") -> TargetPolicy:
    return TargetPolicy(
        allowed, own_ports=[OWN], local_addresses=[ipaddress.ip_address("10.9.9.9")]
    )


@pytest.mark.parametrize(
    "target",
    [
        "a.bank.svc.cluster.local:50051",
        "A.B.Bank.svc.cluster.local.:50051",  # case and a trailing dot do not matter
        "orders:1",
        "orders:65535",
        "dns:///orders:50051",
        "dns:orders",  # gRPC's default port 443; orders:* allows it
        "10.200.0.1:80",
        "ipv4:10.0.0.1:1,10.0.0.2:2",
        "10.1.2.3:50051",
        "[fd00::1]:7",
    ],
)
def test_the_allow_list_lets_its_patterns_and_cidrs_through(target: str) -> None:
    _policy(ALLOWED).check_target(target)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("a.bank.svc.cluster.local:50052", "not in the allowed targets"),  # the port differs
        ("bank.svc.cluster.local:50051", "not in the allowed targets"),  # * needs a label
        ("evil.com:50051", "not in the allowed targets"),
        ("orders.evil.com:1", "not in the allowed targets"),
        ("11.0.0.1:80", "not in the allowed targets"),
        ("ipv4:10.0.0.1:1,11.0.0.2:2", "not in the allowed targets"),
        ("[fd00::2]:7", "not in the allowed targets"),
        ("169.254.169.254:80", "metadata"),  # listed CIDRs never open the denied set
        ("unix:/var/run/x.sock", "unix"),
    ],
)
def test_the_allow_list_refuses_everything_else(target: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        _policy(ALLOWED).check_target(target)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("169.254.169.254:80", "metadata"),
        ("[fe80::1]:80", "metadata"),
        ("[::ffff:169.254.169.254]:80", "metadata"),
        ("100.100.100.200:80", "metadata"),
        ("[fd00:ec2::254]:80", "metadata"),
        ("0.0.0.0:5000", "0.x"),
        ("unix:/x", "unix"),
        ("unix-abstract:x", "unix"),
        ("vsock:3:5000", "vsock"),
        ("dns://8.8.8.8/orders:50051", "dns://"),
        ("127.0.0.1:36790", "its own address"),
        ("[::1]:36790", "its own address"),
        ("10.9.9.9:36790", "its own address"),
        ("localhost:36790", "its own address"),
    ],
)
def test_without_a_list_only_the_always_denied_targets_are_refused(target: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        _policy().check_target(target)


@pytest.mark.parametrize(
    "target", ["127.0.0.1:5000", "localhost:5000", "bank:50051", "dns:///bank:1", "10.9.9.9:80"]
)
def test_without_a_list_other_targets_are_allowed(target: str) -> None:
    _policy().check_target(target)


def test_resolved_addresses_must_be_in_the_listed_cidrs() -> None:
    p = _policy("*.svc:50051,10.0.0.0/8")
    p.check_address(ipaddress.ip_address("10.1.1.1"), 50051)
    with pytest.raises(TargetRefused, match="not in the allowed"):
        p.check_address(ipaddress.ip_address("192.168.1.1"), 50051)
    names_only = _policy("*.svc:50051")  # no CIDRs: only the denied set applies
    names_only.check_address(ipaddress.ip_address("192.168.1.1"), 50051)
    with pytest.raises(TargetRefused, match="metadata"):
        names_only.check_address(ipaddress.ip_address("169.254.169.254"), 80)


def test_the_own_port_learnt_after_binding_is_refused() -> None:
    p = TargetPolicy("", own_ports=[0])
    p.check_target("127.0.0.1:41234")
    p.listening_on(41234)
    with pytest.raises(TargetRefused, match="own address"):
        p.check_target("127.0.0.1:41234")


@pytest.mark.parametrize("entry", ["orders", "10.0.0.0/33", "orders:http", "x/8"])
def test_a_malformed_entry_fails_at_start(entry: str) -> None:
    with pytest.raises(SettingsError, match="STEPPING_ALLOWED_TARGETS"):
        TargetPolicy.from_settings(entry, "127.0.0.1:36790")


def _step(target: str, comp: str = "") -> S.Step:
    s = S.Step(action=S.Endpoint(target=target, method="/a.B/C"))
    if comp:
        s.compensation.CopyFrom(S.Endpoint(target=comp, method="/a.B/Undo"))
    return s


@pytest.mark.parametrize(
    ("steps", "qp", "field"),
    [
        ([_step("orders:1"), _step("evil:1")], None, "steps[1].action.target"),
        ([_step("orders:1", comp="evil:1")], None, "steps[0].compensation.target"),
        ([_step("orders:1")], "10.0.0.1:1", None),
        ([_step("orders:1")], "evil:1", "query_prepared.target"),
        ([_step("orders:1")], "11.0.0.1:1", "query_prepared.target"),
    ],
)
def test_a_request_naming_a_target_outside_the_list_is_invalid(
    steps: list[S.Step], qp: str | None, field: str | None
) -> None:
    conv = Converter(Settings.load(env={"STEPPING_ALLOWED_TARGETS": "orders:*,10.0.0.0/8"}))
    options = S.TransactionOptions(mode=S.MODE_SAGA)
    query = S.Endpoint(target=qp) if qp else None

    def convert() -> object:
        return conv.new_transaction(
            "g-1", steps, options, query_prepared=query, database="", trace_context={}
        )

    if field is None:
        convert()
        return
    with pytest.raises(InvalidArgument) as err:
        convert()
    assert err.value.field == field
    assert "is not allowed" in err.value.description
