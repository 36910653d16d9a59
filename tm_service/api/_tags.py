"""Tags: a job's business keys ("order_id" = "123"), checked against their limits."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from tm_service.errors import InvalidArgument

__all__ = ["MAX_TAGS", "MAX_TAGS_BYTES", "MAX_TAG_KEY", "MAX_TAG_VALUE", "tags"]

MAX_TAGS = 16
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256
MAX_TAGS_BYTES = 4096  # keys and values together, UTF-8

_TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


def _printable(text: str) -> bool:
    return text.isprintable()


def tags(values: Mapping[str, str], field: str = "tags") -> dict[str, str]:
    """A job's (or a filter's) tags, checked against the limits."""
    if len(values) > MAX_TAGS:
        raise InvalidArgument(field, f"at most {MAX_TAGS} tags are allowed, got {len(values)}")
    total = 0
    for key, value in sorted(values.items()):
        f = f"{field}[{json.dumps(key)}]"
        if not 1 <= len(key) <= MAX_TAG_KEY or not _TAG_KEY.match(key):
            raise InvalidArgument(
                f,
                f"keys are 1-{MAX_TAG_KEY} characters: letters, digits and _ . - /,"
                " starting with a letter or digit",
            )
        if len(value) > MAX_TAG_VALUE:
            raise InvalidArgument(f, f"values are at most {MAX_TAG_VALUE} characters")
        if not _printable(value):
            raise InvalidArgument(f, "values must not contain control characters")
        total += len(key.encode()) + len(value.encode())
    if total > MAX_TAGS_BYTES:
        raise InvalidArgument(
            field, f"keys and values total {total} bytes; at most {MAX_TAGS_BYTES}"
        )
    return dict(values)
