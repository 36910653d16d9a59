"""Is the listen address free? Asked before gRPC binds it, so a taken one is one clear line.

gRPC's own bind failure logs a C-core error line of its own before Python sees it; a
probe with a plain socket (same SO_REUSEADDR as gRPC's listener) fails the same way
without that noise, and before the TM starts its database. The bind itself still
reports a failure if the address is taken between the probe and the bind.
"""

from __future__ import annotations

import errno
import socket

__all__ = ["ListenError", "check_address_free"]


class ListenError(RuntimeError):
    """The listen address cannot be bound (taken by another process, or invalid)."""


def _host_port(listen: str) -> tuple[str, int] | None:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        return None  # not host:port (a unix: address, ...): leave it to gRPC
    return host.strip("[]"), int(port)


def check_address_free(listen: str) -> None:
    """Raise ListenError when ``listen`` (host:port) is already bound by someone else."""
    parsed = _host_port(listen)
    if parsed is None or parsed[1] == 0:
        return
    host, port = parsed
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        raise ListenError(f"cannot listen on {listen}: {err.strerror}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    raise ListenError(
                        f"cannot listen on {listen}: the address is already in use"
                    ) from None
                if err.errno != errno.EAFNOSUPPORT:  # no IPv6 here: gRPC skips it too
                    raise ListenError(f"cannot listen on {listen}: {err.strerror}") from None
