"""TLS on the TM's listener: server credentials that follow the certificate files.

cert-manager (and most rotation tools) replace the files in place; grpc asks the
fetcher below at each new handshake, so a rotated certificate is served to the next
connection without a restart. Connections already open keep the certificate they
were made with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from tm_service._files import FileStamp, file_stamp
from tm_service.config import Settings, SettingsError

__all__ = ["CertificateFiles", "server_credentials"]

_log = logging.getLogger(__name__)

# How often a handshake may look at the files: a stat per connection is cheap, but
# a burst of new connections needs no more than one look per interval.
CHECK_INTERVAL = 1.0


class CertificateFiles:
    """The certificate, key and optional client CA files, re-read when one changes."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        client_ca_file: str = "",
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = tuple(p for p in (cert_file, key_file, client_ca_file) if p)
        self._cert_file, self._key_file, self._ca_file = cert_file, key_file, client_ca_file
        self._monotonic = monotonic
        self._checked = monotonic()
        self._stamp = self._stamps()
        self.initial = self._configuration()  # raises: the TM does not start without one

    def _stamps(self) -> tuple[FileStamp, ...]:
        return tuple(file_stamp(p) for p in self._paths)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        with open(self._cert_file, "rb") as f:
            cert = f.read()
        with open(self._key_file, "rb") as f:
            key = f.read()
        ca = None
        if self._ca_file:
            with open(self._ca_file, "rb") as f:
                ca = f.read()
        if b"-----BEGIN" not in cert or b"-----BEGIN" not in key or (ca is not None and not ca):
            raise ValueError("not PEM")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's fetcher: a new configuration when the files changed, else None."""
        now = self._monotonic()
        if now - self._checked < CHECK_INTERVAL:
            return None
        self._checked = now
        try:
            stamp = self._stamps()
            if stamp == self._stamp:
                return None
            config = self._configuration()
        except (OSError, ValueError) as err:
            # Mid-rotation (one file written, the other not yet) or broken: keep serving
            # the previous certificate and look again at the next interval.
            _log.error("TLS files unreadable, keeping the previous certificate: %s", err)
            return None
        self._stamp = stamp
        _log.info("TLS certificate reloaded from %s", self._cert_file)
        return config


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (or mTLS with ``tls_client_ca_file``) credentials; None for plaintext."""
    s = settings
    if not (s.tls_cert_file or s.tls_key_file or s.tls_client_ca_file):
        return None
    if not (s.tls_cert_file and s.tls_key_file):
        raise SettingsError(
            "STEPPING_TLS_CERT_FILE and STEPPING_TLS_KEY_FILE must be set together "
            "(STEPPING_TLS_CLIENT_CA_FILE needs both)"
        )
    try:
        files = CertificateFiles(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
    except (OSError, ValueError) as err:
        raise SettingsError(f"TLS files: {err}") from None
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        files.fetch,  # type: ignore[arg-type]  # grpc takes None for "unchanged"; its stub not
        require_client_authentication=bool(s.tls_client_ca_file),
    )
