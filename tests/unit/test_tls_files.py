"""The TLS files: checked at most once a second, re-read when changed, kept when broken."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme

from tests.certs import server_pair
from tm_service._tls import CertificateFiles, server_credentials
from tm_service.config import Settings, SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _touch(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_changed_files_give_a_new_configuration_broken_ones_keep_the_old(
    tmp_path: Path,
) -> None:
    cert, key = server_pair(trustme.CA()).write(tmp_path, "tm")
    clock = Clock()
    files = CertificateFiles(str(cert), str(key), monotonic=clock)
    clock.now = 5.0
    assert files.fetch() is None  # unchanged
    rotated = server_pair(trustme.CA())
    cert.write_bytes(rotated.cert)
    key.write_bytes(rotated.key)
    _touch(cert)
    clock.now = 5.5
    assert files.fetch() is None  # looked at a moment ago
    clock.now = 6.0
    assert files.fetch() is not None
    clock.now = 7.0
    assert files.fetch() is None
    key.write_bytes(b"")  # mid-rotation: the key not written yet
    _touch(key)
    clock.now = 8.0
    assert files.fetch() is None
    key.write_bytes(rotated.key)
    _touch(key)
    clock.now = 9.0
    assert files.fetch() is not None


def test_tls_settings_must_come_in_pairs_and_name_readable_files(tmp_path: Path) -> None:
    assert server_credentials(Settings()) is None
    with pytest.raises(SettingsError, match="together"):
        server_credentials(Settings(tls_cert_file="/x.crt"))
    with pytest.raises(SettingsError, match="together"):
        server_credentials(Settings(tls_client_ca_file="/ca.crt"))
    with pytest.raises(SettingsError, match="TLS files"):
        server_credentials(Settings(tls_cert_file="/no.crt", tls_key_file="/no.key"))
    cert, key = server_pair(trustme.CA()).write(tmp_path, "tm")
    assert server_credentials(Settings(tls_cert_file=str(cert), tls_key_file=str(key)))
