"""Recognising a Git LFS pointer file served in place of a model, for every loader.

A server that hands out a repository's raw Git blobs (rather than its LFS storage) returns a
~130-byte text file ``version https://git-lfs.github.com/spec/v1`` / ``oid sha256:...`` /
``size ...`` instead of the model. Each format's parser would then report a meaningless
structural error (a FlatBuffers offset, "not a zip archive"); this check runs first and says
what the file really is and where the real one is described.
"""

from __future__ import annotations

import re
from pathlib import Path

from omnihub.errors import LoadError

__all__ = ["LFS_POINTER_PREFIX", "reject_lfs_pointer"]

#: How every Git LFS pointer file starts (the spec's first line, ``version <url>``).
LFS_POINTER_PREFIX = b"version https://git-lfs"
#: Pointer files are smaller than this (Git LFS specification).
_MAX_POINTER_SIZE = 1024

_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_SIZE = re.compile(rb"^size ([0-9]{1,20})$", re.MULTILINE)


def reject_lfs_pointer(path: Path, what: str, head: bytes | None = None) -> None:
    """Raise :class:`LoadError` if ``path`` is a Git LFS pointer, not a ``what`` model.

    ``head`` is the file's start if the caller has already read it; otherwise up to 1 KiB is
    read. An unreadable file passes, so that the loader reports its own, precise OSError.
    """
    if head is None:
        try:
            with open(path, "rb") as stream:
                head = stream.read(_MAX_POINTER_SIZE)
        except OSError:
            return
    if not head.startswith(LFS_POINTER_PREFIX):
        return
    details = []
    oid = _OID.search(head[:_MAX_POINTER_SIZE])
    if oid is not None:
        details.append(f"oid sha256:{oid.group(1).decode()}")
    size = _SIZE.search(head[:_MAX_POINTER_SIZE])
    if size is not None:
        details.append(f"size {int(size.group(1))} bytes")
    described = f" ({', '.join(details)})" if details else ""
    raise LoadError(
        f"{path}: a Git LFS pointer file, not the {what} model: the server returned the "
        f"pointer{described} instead of the file it points to; fetch it from the "
        "repository's LFS storage (e.g. media.githubusercontent.com, or a Hugging Face "
        "'resolve' URL) rather than the raw Git blob"
    )
