"""Participant-call settings are read at start, and a wrong combination fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tm_service.config import Settings, SettingsError
from tm_service.processing import GrpcTransport
from tm_service.processing._transport import SecretFiles, channel_credentials, read_signing_key


def _settings(**env: str) -> Settings:
    return Settings.load(env={f"STEPPING_{k.upper()}": v for k, v in env.items()})


def test_the_signing_key_is_the_files_bytes_without_the_trailing_newline(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"\x00binary key\n")
    assert read_signing_key(str(key)) == b"\x00binary key"
    assert read_signing_key("") is None
    with pytest.raises(SettingsError, match="SIGNING_KEY_FILE"):
        read_signing_key(str(tmp_path / "missing"))
    key.write_bytes(b"\n")
    with pytest.raises(SettingsError, match="empty"):
        read_signing_key(str(key))


def test_tls_files_without_participant_tls_fail_the_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="STEPPING_PARTICIPANT_TLS is not true"):
        channel_credentials(_settings(participant_tls_ca_file=str(tmp_path / "ca.pem")))
    with pytest.raises(SettingsError, match="go together"):
        channel_credentials(
            _settings(participant_tls="true", participant_tls_cert_file=str(tmp_path / "c"))
        )
    with pytest.raises(SettingsError, match="CA_FILE"):
        channel_credentials(
            _settings(participant_tls="true", participant_tls_ca_file=str(tmp_path / "none"))
        )
    assert channel_credentials(_settings()) is None
    assert channel_credentials(_settings(participant_tls="true")) is not None  # system roots


def test_a_bad_allow_list_fails_the_start() -> None:
    with pytest.raises(SettingsError, match="STEPPING_ALLOWED_TARGETS"):
        GrpcTransport.from_settings(_settings(allowed_targets="orders"))


def test_secret_files_are_read_again_only_when_changed_and_usable(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_bytes(b"one\n")
    settings = Settings.load(env={}, overrides={"participant_signing_key_file": str(key)})

    def load() -> tuple[None, bytes | None]:
        return None, read_signing_key(settings.participant_signing_key_file)

    files = SecretFiles((str(key), ""), load)
    assert files and files.changed() is None  # nothing changed since it was made
    key.write_bytes(b"")  # half-written: unusable, the old key stays
    assert files.changed() is None
    key.write_bytes(b"two-two\n")
    assert files.changed() == (None, b"two-two")
    assert files.changed() is None
    assert not SecretFiles(("", ""), load)  # no files: nothing to watch
