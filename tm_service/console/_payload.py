"""How bytes and headers are shown: UTF-8/JSON when they decode, else hex; secrets redacted."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SHOW_BYTES", "Shown", "redact_headers", "show_bytes"]

SHOW_BYTES = 4096  # more than this is cut on the page, with a download link

_SECRET = re.compile(
    r"authorization|cookie|token|secret|password|passwd|api[-_]?key|credential|signature|session",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class Shown:
    kind: str  # "empty", "json", "text" or "hex"
    text: str
    size: int
    cut: bool


def show_bytes(data: bytes, limit: int = SHOW_BYTES) -> Shown:
    """The text to show for ``data`` (at most ``limit`` bytes of it)."""
    if not data:
        return Shown("empty", "", 0, cut=False)
    head = data[:limit]
    cut = len(data) > limit
    try:
        text = data.decode("utf-8") if not cut else head.decode("utf-8", errors="ignore")
    except UnicodeDecodeError:
        return Shown("hex", head.hex(" "), len(data), cut)
    if not cut:
        try:
            return Shown("json", json.dumps(json.loads(text), indent=2), len(data), cut=False)
        except ValueError:
            pass
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return Shown("hex", head.hex(" "), len(data), cut)
    return Shown("text", text, len(data), cut)


def redact_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Sorted headers; the values of credential-like names replaced by ``[redacted]``."""
    return [(k, REDACTED if _SECRET.search(k) else v) for k, v in sorted(headers.items())]
