"""Which participant targets the TM may call: the allow-list and the always-denied set.

Checked twice: on the target's text when a Prepare/Submit names it (``check_target``,
so a refused job is never stored), and on the addresses a name resolves to when the
transport dials it (``check_address``), so a name cannot smuggle the TM onto an
address the text check would have refused (DNS pointing at 169.254.169.254, or at the
TM itself).

``STEPPING_ALLOWED_TARGETS`` entries (comma-separated):

* ``host:port`` patterns: ``orders:50051``, ``*.bank.svc.cluster.local:50051``,
  ``orders:*`` (``*`` matches any run of characters, case-insensitive); an IP literal
  here (``10.1.2.3:50051``, ``[fd00::1]:50051``) is the one address.
* CIDRs, with an optional port: ``10.0.0.0/8``, ``10.1.2.3/32:50051``, ``fd00::/8``.

Names must match a host pattern; IP literals must fall in a CIDR or equal an IP
entry. When the list holds CIDRs, the addresses a name resolves to must fall in one
of them too (a name pattern plus the cluster's pod CIDR pins both); without CIDRs only
the always-denied set is checked on them.

Always denied, with or without a list: link-local and cloud metadata addresses, the
TM's own port on a local address, ``unix:``/``unix-abstract:``/``vsock:`` targets and
``dns://<authority>/`` targets (they pick the DNS server).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from tm_service.config import SettingsError

__all__ = [
    "ALWAYS_DENIED",
    "HostPort",
    "IPAddress",
    "TargetPolicy",
    "TargetRefused",
    "parse_ip",
    "parse_target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Never dialled: link-local (where cloud metadata services live) and the metadata
#: addresses that are not link-local.
ALWAYS_DENIED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local; AWS/GCP/Azure/OpenStack metadata 169.254.169.254
        "fe80::/10",  # IPv6 link-local
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "168.63.129.16/32",  # Azure wire server
        "0.0.0.0/8",  # "this network": 0.x dials the local host on Linux
    )
)
_DENIED_SCHEMES = ("unix:", "unix-abstract:", "vsock:")
_DEFAULT_PORT = 443  # what gRPC dials for a dns: target without one


class TargetRefused(ValueError):
    """A target the policy does not allow; the message says why (safe to return)."""


@dataclass(frozen=True, slots=True)
class HostPort:
    """One address of a target: an IP literal (``ip`` set) or a name to resolve."""

    host: str
    port: int
    ip: IPAddress | None = None


def parse_ip(text: str) -> IPAddress | None:
    """An IP literal (brackets allowed; IPv4-mapped IPv6 as IPv4), or None for a name."""
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return ip


def _host_port(text: str, *, default_port: int | None) -> HostPort:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]")
        port = port.removeprefix(":") if sep else ""
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:  # no port, or a bare IPv6 address
            host, port = text, ""
    if not port:
        if default_port is None:
            raise TargetRefused(f"{text!r} has no port")
        return HostPort(host, default_port, parse_ip(host))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetRefused(f"{text!r} has no valid port")
    return HostPort(host, int(port), parse_ip(host))


def parse_target(target: str) -> list[HostPort]:
    """The addresses a gRPC target names; TargetRefused for schemes the TM never dials."""
    if target.startswith(_DENIED_SCHEMES):
        raise TargetRefused("unix and vsock targets are not allowed")
    if target.startswith(("ipv4:", "ipv6:")):
        addresses = [
            _host_port(a, default_port=_DEFAULT_PORT) for a in target.partition(":")[2].split(",")
        ]
        if not addresses or any(a.ip is None for a in addresses):
            raise TargetRefused(f"{target!r} is not a list of IP addresses")
        return addresses
    if target.startswith("dns:"):
        rest = target[4:]
        if rest.startswith("//"):
            authority, _, rest = rest[2:].partition("/")
            if authority:
                raise TargetRefused("dns://<authority>/ targets are not allowed")
        return [_host_port(rest, default_port=_DEFAULT_PORT)]
    return [_host_port(target, default_port=None)]


@dataclass(frozen=True, slots=True)
class _Pattern:
    host: re.Pattern[str]
    port: int | None  # None: any


@dataclass(frozen=True, slots=True)
class _Network:
    network: IPNetwork
    port: int | None


def _port(text: str, entry: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"allowed target {entry!r}: the port must be a number or *")
    return int(text)


def _entry(entry: str) -> _Pattern | _Network:
    if "/" in entry:
        address, _, rest = entry.partition("/")
        prefix, _, port = rest.partition(":")
        try:
            network = ipaddress.ip_network(f"{address.strip('[]')}/{prefix}", strict=False)
        except ValueError:
            raise ValueError(f"allowed target {entry!r} is not a CIDR") from None
        return _Network(network, _port(port, entry) if port else None)
    host, sep, port = entry.rpartition(":")
    if not sep or not host:
        raise ValueError(f"allowed target {entry!r} needs a port (host:port or host:*)")
    ip = parse_ip(host)
    if ip is not None:
        return _Network(ipaddress.ip_network(ip), _port(port, entry))
    regex = ".*".join(re.escape(part) for part in host.lower().split("*"))
    return _Pattern(re.compile(f"^{regex}$"), _port(port, entry))


@functools.cache
def _local_addresses() -> frozenset[IPAddress]:
    """This host's addresses by its name (pod IP, host IP); loopback is checked apart."""
    found: set[IPAddress] = set()
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except OSError:
        return frozenset()
    for info in infos:
        ip = parse_ip(str(info[4][0]))
        if ip is not None:
            found.add(ip)
    return frozenset(found)


class TargetPolicy:
    """The allow-list (empty: allow all but the always-denied) and the TM's own address."""

    def __init__(
        self,
        allowed: str = "",
        *,
        own_ports: Iterable[int] = (),
        local_addresses: Iterable[IPAddress] | None = None,
    ) -> None:
        entries = [_entry(e.strip()) for e in allowed.split(",") if e.strip()]
        self._patterns = [e for e in entries if isinstance(e, _Pattern)]
        self._networks = [e for e in entries if isinstance(e, _Network)]
        self.restricted = bool(entries)
        self._own_ports = {p for p in own_ports if p}
        self._local = set(_local_addresses() if local_addresses is None else local_addresses)
        self._local_names = {"localhost", socket.gethostname().lower()}

    @classmethod
    def from_settings(cls, allowed_targets: str, listen: str) -> TargetPolicy:
        """The policy of ``STEPPING_ALLOWED_TARGETS``, knowing the TM listens on ``listen``."""
        host, _, port = listen.rpartition(":")
        own = parse_ip(host)
        local = _local_addresses() | ({own} if own is not None else set())
        try:
            return cls(
                allowed_targets,
                own_ports=[int(port)] if port.isdigit() else [],
                local_addresses=local,
            )
        except ValueError as err:
            raise SettingsError(f"STEPPING_ALLOWED_TARGETS: {err}") from None

    def listening_on(self, port: int) -> None:
        """The TM's own port (known once bound): never a target on a local address."""
        if port:
            self._own_ports.add(port)

    def check_target(self, target: str) -> list[HostPort]:
        """The target's addresses if the text is allowed; TargetRefused otherwise."""
        addresses = parse_target(target)
        for a in addresses:
            if a.ip is not None:
                self.check_literal(a.ip, a.port)
            elif self._own_ports and a.port in self._own_ports and self._is_local_name(a.host):
                raise TargetRefused("the TM does not call its own address")
            elif self.restricted and not any(self._matches(p, a) for p in self._patterns):
                raise TargetRefused(f"{target!r} is not in the allowed targets")
        return addresses

    def check_address(self, ip: IPAddress, port: int) -> None:
        """Refuse an address the TM must not dial (also where a name resolved to)."""
        ip = parse_ip(str(ip)) or ip
        if any(ip in n for n in ALWAYS_DENIED):
            raise TargetRefused("link-local, cloud metadata and 0.x addresses are not allowed")
        if port in self._own_ports and (ip.is_loopback or ip.is_unspecified or ip in self._local):
            raise TargetRefused("the TM does not call its own address")
        if self._networks and not any(
            ip in n.network and n.port in (None, port) for n in self._networks
        ):
            raise TargetRefused("the address is not in the allowed targets")

    def check_literal(self, ip: IPAddress, port: int) -> None:
        """An IP literal named in a request: with an allow-list it must be listed."""
        self.check_address(ip, port)
        if self.restricted and not self._networks:
            raise TargetRefused("IP addresses are not in the allowed targets")

    def _is_local_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._local_names

    @staticmethod
    def _matches(p: _Pattern, a: HostPort) -> bool:
        return p.port in (None, a.port) and p.host.match(a.host.lower().rstrip(".")) is not None
