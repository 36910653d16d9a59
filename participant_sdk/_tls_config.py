"""TLSConfig: how a client reaches a TM that serves TLS (and wants a client certificate)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["TLSConfig"]


@dataclass(frozen=True)
class TLSConfig:
    """TLS to the TM (Temporal's ``TLSConfig``, the same fields).

    ``server_root_ca_cert``: PEM roots that sign the TM's certificate (None: the
    system's). ``domain``: the name expected in the TM's certificate when it is not
    the target's host. ``client_cert`` / ``client_private_key``: PEM, for a TM that
    requires client certificates (mTLS).
    """

    server_root_ca_cert: bytes | None = None
    domain: str | None = None
    client_cert: bytes | None = None
    client_private_key: bytes | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_private_key is None):
            raise ValueError("client_cert and client_private_key go together")

    @classmethod
    def from_files(
        cls,
        *,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        domain: str | None = None,
    ) -> TLSConfig:
        """The same, read from PEM files."""

        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(ca), domain, read(cert), read(key))

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.server_root_ca_cert,
            private_key=self.client_private_key,
            certificate_chain=self.client_cert,
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.domain)] if self.domain else []
