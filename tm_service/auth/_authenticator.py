"""Who is calling: a bearer token from the metadata, or the client certificate (mTLS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tm_service.auth._principals import Principal, PrincipalFile
from tm_service.errors import Unauthenticated

__all__ = ["Authenticator", "peer_identities"]

# grpc's auth context of a verified client certificate: URI SANs (SPIFFE ids), DNS
# SANs, then the subject's CN.
_IDENTITY_KEYS = ("peer_uri", "peer_dns", "x509_common_name")


def peer_identities(auth_context: Mapping[str, Iterable[bytes]]) -> list[str]:
    """The identities of the peer's verified client certificate (none without mTLS)."""
    out: list[str] = []
    for key in _IDENTITY_KEYS:
        out.extend(v.decode("utf-8", "replace") for v in auth_context.get(key, ()))
    return out


class Authenticator:
    """Resolves the principal of a request against the auth file."""

    def __init__(self, principals: PrincipalFile) -> None:
        self._file = principals

    def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]], identities: Iterable[str]
    ) -> Principal:
        """The caller's principal; ``Unauthenticated`` when none is recognised.

        A bearer token, when sent, decides alone: a wrong one is refused even over a
        connection whose certificate would be known.
        """
        known = self._file.current()
        for key, value in metadata:
            if key != "authorization":
                continue
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization header must be 'Bearer <token>'")
            principal = known.by_token(token.strip())
            if principal is None:
                raise Unauthenticated("unknown bearer token")
            return principal
        principal = known.by_identity(identities)
        if principal is None:
            raise Unauthenticated(
                "no credential: send 'authorization: Bearer <token>' or a known client certificate"
            )
        return principal
