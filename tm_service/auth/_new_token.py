"""``stepping-tm auth new-token``: a fresh bearer token and the auth-file entry for it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

from tm_service.auth._principals import Role, hash_token

__all__ = ["new_token_text"]


def new_token_text(principal: str, roles: Sequence[str], token: str | None = None) -> str:
    """What the command prints: the token (once: the TM keeps only its hash) and TOML."""
    token = token or secrets.token_urlsafe(32)
    names = [Role(r).value for r in roles] or [Role.CLIENT.value]
    # TOML's basic strings take JSON's escapes.
    return "\n".join(
        [
            f"token: {token}",
            "",
            "# Add to the auth file (STEPPING_AUTH_FILE), or append the hash to an existing",
            "# principal's token_sha256. The TM stores only the hash: keep the token secret.",
            "[[principal]]",
            f"name = {json.dumps(principal)}",
            f"roles = [{', '.join(json.dumps(n) for n in names)}]",
            f"token_sha256 = [{json.dumps(hash_token(token).hex())}]",
            "",
        ]
    )
