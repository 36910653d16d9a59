"""Authentication and authorisation of the TM's API (README "Security").

The auth file names principals, each with roles and its credentials (hashes of bearer
tokens, client-certificate identities); the API layer resolves each request's
principal, the use cases check it against the job's owner.
"""

from tm_service.auth._authenticator import Authenticator, peer_identities
from tm_service.auth._new_token import new_token_text
from tm_service.auth._principals import (
    AuthFileError,
    Principal,
    PrincipalFile,
    Principals,
    Role,
    hash_token,
)

__all__ = [
    "AuthFileError",
    "Authenticator",
    "Principal",
    "PrincipalFile",
    "Principals",
    "Role",
    "hash_token",
    "new_token_text",
    "peer_identities",
]
