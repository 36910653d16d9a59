"""The TM's ports: the API port (plaintext or TLS) and the optional health-only port."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from tm_service._tls import server_credentials
from tm_service.config import Settings

__all__ = ["add_api_port", "start_health_server"]

_log = logging.getLogger(__name__)


def add_api_port(server: grpc.aio.Server, settings: Settings) -> int:
    """Bind ``settings.listen`` (TLS when configured); the port, raising if it is taken."""
    creds = server_credentials(settings)
    if creds is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, creds)
    if port == 0:
        raise RuntimeError(f"could not listen on {settings.listen}")
    if not settings.auth_file and not _is_loopback(settings.listen):
        _log.warning(
            "listening on %s without STEPPING_AUTH_FILE: anyone who reaches this port can "
            "run, abort and read every job (README: Security)",
            settings.listen,
        )
    return port


async def start_health_server(
    settings: Settings, servicer: Any, *, reuse_port: bool = False
) -> tuple[grpc.aio.Server | None, int]:
    """A plaintext server of grpc.health.v1 only, sharing ``servicer`` (its state).

    kubelet's gRPC probes cannot speak TLS; this port lets them probe a TLS TM
    without opening its API in plaintext.
    """
    if not settings.health_listen:
        return None, 0
    # As the API port: only the processes of ``--workers N`` share it.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if reuse_port else 0)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(settings.health_listen)
    if port == 0:
        raise RuntimeError(f"could not listen on {settings.health_listen}")
    await server.start()
    _log.info("health-only plaintext port on %s (port %d)", settings.health_listen, port)
    return server, port


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
