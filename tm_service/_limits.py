"""Text limits shared by the API and the processors: control characters, cut texts."""

from __future__ import annotations

import re

__all__ = ["CUT_MARKER", "control_char", "cut_text"]

#: Appended to a text that was cut, so a reader sees that something is missing.
CUT_MARKER = "…(cut)"
_CUT_BYTES = len(CUT_MARKER.encode())

# C0 and C1 control characters and DEL (Unicode category Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def control_char(text: str, *, lines: bool = False) -> int | None:
    """Position of the first control character in ``text`` (``lines``: tab and LF pass)."""
    m = (_CONTROL_BUT_LINES if lines else _CONTROL).search(text)
    return None if m is None else m.start()


def cut_text(text: str, max_bytes: int) -> str:
    """``text`` if it fits in ``max_bytes`` UTF-8 bytes, else its start and CUT_MARKER."""
    if len(text) * 4 <= max_bytes:  # fits whatever the characters are: skip encoding
        return text
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    keep = max(max_bytes - _CUT_BYTES, 0)
    # errors="ignore" drops a character split by the cut instead of a broken byte.
    return raw[:keep].decode(errors="ignore") + CUT_MARKER
