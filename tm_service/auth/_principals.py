"""Principals and their roles, read from the TOML auth file (and re-read on change)."""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tm_service._files import FileStamp, file_stamp
from tm_service.config import SettingsError

__all__ = ["AuthFileError", "Principal", "PrincipalFile", "Principals", "Role", "hash_token"]

_log = logging.getLogger(__name__)

_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Role(enum.Enum):
    """What a principal may do (README "Security")."""

    CLIENT = "client"  # NewGid, Prepare, Submit, Abort, Get, List: on its own jobs
    READER = "reader"  # Get and List every job
    ADMIN = "admin"  # everything, on any job


class AuthFileError(SettingsError):
    """The auth file cannot be read or has the wrong form."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from; jobs it creates carry its ``name`` as their owner."""

    name: str
    roles: frozenset[Role]

    @property
    def may_create(self) -> bool:
        return bool(self.roles & {Role.CLIENT, Role.ADMIN})

    def may_write(self, owner: str | None) -> bool:
        """May Submit or Abort a job owned by ``owner`` (None: no stored job)."""
        return Role.ADMIN in self.roles or (
            Role.CLIENT in self.roles and owner is not None and owner == self.name
        )

    def may_read(self, owner: str | None) -> bool:
        """May Get a job owned by ``owner``."""
        return bool(self.roles & {Role.READER, Role.ADMIN}) or self.may_write(owner)

    @property
    def reads_all(self) -> bool:
        """List shows every job (else only the principal's own)."""
        return bool(self.roles & {Role.READER, Role.ADMIN})


def hash_token(token: str) -> bytes:
    """The SHA-256 the auth file stores (as hex) for a bearer token."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Principals:
    """One parsed auth file: token hashes and TLS identities, each naming a principal."""

    tokens: tuple[tuple[bytes, Principal], ...]
    identities: dict[str, Principal]

    @classmethod
    def parse(cls, text: str) -> Principals:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise AuthFileError(f"not TOML: {err}") from None
        entries = data.get("principal", [])
        if not isinstance(entries, list):
            raise AuthFileError("[[principal]] must be an array of tables")
        tokens: list[tuple[bytes, Principal]] = []
        identities: dict[str, Principal] = {}
        names: set[str] = set()
        for i, entry in enumerate(entries):
            where = f"principal[{i}]"
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                raise AuthFileError(f"{where}: name must be a non-empty string")
            if name in names:
                raise AuthFileError(f"{where}: principal {name!r} appears twice")
            names.add(name)
            principal = Principal(name, frozenset(_roles(entry.get("roles"), where)))
            for digest in _strings(entry.get("token_sha256", []), f"{where}.token_sha256"):
                if not _HEX_SHA256.match(digest.lower()):
                    raise AuthFileError(f"{where}.token_sha256: {digest!r} is not a hex SHA-256")
                tokens.append((bytes.fromhex(digest), principal))
            for identity in _strings(entry.get("tls_identities", []), f"{where}.tls_identities"):
                if identity in identities:
                    raise AuthFileError(f"{where}: TLS identity {identity!r} appears twice")
                identities[identity] = principal
        return cls(tuple(tokens), identities)

    def by_token(self, token: str) -> Principal | None:
        digest = hash_token(token)
        found = None
        # Compare with every entry in constant time, so the answer's timing tells nothing
        # about how much of a guessed hash matched.
        for known, principal in self.tokens:
            if hmac.compare_digest(digest, known):
                found = principal
        return found

    def by_identity(self, identities: Iterable[str]) -> Principal | None:
        for identity in identities:
            principal = self.identities.get(identity)
            if principal is not None:
                return principal
        return None


def _roles(value: object, where: str) -> list[Role]:
    names = _strings(value, f"{where}.roles")
    if not names:
        raise AuthFileError(f"{where}.roles: give at least one of client, reader, admin")
    try:
        return [Role(n) for n in names]
    except ValueError:
        raise AuthFileError(
            f"{where}.roles: {names!r} has a role other than client, reader, admin"
        ) from None


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthFileError(f"{where}: must be a list of strings")
    return list(value)


class PrincipalFile:
    """The auth file, re-read when it changes (looked at at most once per ``interval``).

    A file that cannot be read or parsed after a change keeps the previous principals
    (and logs an error), so a half-written edit never locks every client out.
    """

    def __init__(
        self,
        path: str,
        *,
        interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._interval = interval
        self._monotonic = monotonic
        self._stamp = self._stat()
        self._principals = self._read()  # raises AuthFileError: the TM does not start
        self._checked = monotonic()

    def _stat(self) -> FileStamp:
        try:
            return file_stamp(self.path)
        except OSError as err:
            raise AuthFileError(f"{self.path}: {err.strerror}") from None

    def _read(self) -> Principals:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as err:
            raise AuthFileError(f"{self.path}: {err}") from None
        try:
            return Principals.parse(text)
        except AuthFileError as err:
            raise AuthFileError(f"{self.path}: {err}") from None

    def current(self) -> Principals:
        """The principals, re-read first if the file changed since the last look."""
        now = self._monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            self._reload()
        return self._principals

    def _reload(self) -> None:
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            self._stamp = stamp  # a broken version is reported once, not every second
            self._principals = self._read()
        except AuthFileError as err:
            _log.error("auth file not reloaded, keeping the previous principals: %s", err)
            return
        _log.info("auth file reloaded: %s", self.path)
