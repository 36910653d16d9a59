"""Who may call a participant: the TM's signature and its TLS client identity.

Checked before a step, its barrier or QueryPrepared runs, so a forged call cannot
write a barrier row or force a rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from stepping import contract

__all__ = ["CallGuard", "ServerTls", "tls_identities"]

_log = logging.getLogger("participant_sdk")

_SAN = "x509_subject_alternative_name"
_CN = "x509_common_name"


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A participant's TLS: its certificate and key (PEM), and with ``client_ca`` mTLS.

    With ``client_ca`` every caller must present a certificate signed by it; pair it
    with ``ParticipantServer(tm_identities=[...])`` to accept only the TM's.
    """

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(
        cls, cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None = None
    ) -> ServerTls:
        """Reads the PEM files now."""
        return cls(
            Path(cert_file).read_bytes(),
            Path(key_file).read_bytes(),
            None if client_ca_file is None else Path(client_ca_file).read_bytes(),
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def tls_identities(context: grpc.aio.ServicerContext[Any, Any]) -> set[str]:
    """The caller's certificate identities: its SANs (URI, DNS, ...) and its CN."""
    auth: Mapping[str, Iterable[bytes]] = context.auth_context() or {}
    found: set[str] = set()
    for key in (_SAN, _CN):
        for value in auth.get(key, ()):
            found.add(value.decode("utf-8", "replace"))
    return found


class CallGuard:
    """Verifies ``stepping-signature`` (with a key) and the client identity (with a list)."""

    def __init__(
        self, *, signing_key: bytes | str | None = None, tm_identities: Sequence[str] = ()
    ) -> None:
        self._key = None if signing_key is None else contract.signing_key(signing_key)
        self._identities = frozenset(tm_identities)

    @property
    def active(self) -> bool:
        return self._key is not None or bool(self._identities)

    def refusal(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        metadata: Sequence[tuple[str, str | bytes]],
        payload: bytes,
        *,
        step: tuple[int, int] | None,
    ) -> tuple[grpc.StatusCode, str] | None:
        """Why this call is refused (status and message), or None to serve it.

        ``step`` is the call's (step index, attempt); None for QueryPrepared.
        """
        if self._identities and not (tls_identities(context) & self._identities):
            _log.warning("refused a call from a client that is not the TM (TLS identity)")
            return grpc.StatusCode.PERMISSION_DENIED, "the caller is not the TM"
        if self._key is None:
            return None
        md = {k: v for k, v in metadata if isinstance(v, str)}
        index, attempt = step if step is not None else (None, None)
        if not contract.verify_signature(
            self._key,
            md.get(contract.KEY_SIGNATURE),
            gid=md.get(contract.KEY_GID, ""),
            step_index=index,
            op=md.get(contract.KEY_OP, ""),
            attempt=attempt,
            payload=payload,
        ):
            _log.warning(
                "refused a call without a valid %s (gid=%s)",
                contract.KEY_SIGNATURE,
                md.get(contract.KEY_GID, ""),
            )
            return grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong {contract.KEY_SIGNATURE}"
        return None
