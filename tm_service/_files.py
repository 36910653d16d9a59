"""Files the TM re-reads when they change (TLS, the auth file, participant secrets)."""

from __future__ import annotations

import os

__all__ = ["FileStamp", "file_stamp"]

#: What tells a file changed: mtime, size and inode (a Kubernetes Secret update swaps
#: a symlink, which changes the inode even when the rest looks alike).
FileStamp = tuple[int, int, int]


def file_stamp(path: str) -> FileStamp:
    """The file's stamp now; OSError when it cannot be looked at."""
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)
