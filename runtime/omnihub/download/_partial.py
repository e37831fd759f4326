"""The partial file of a download (``<file>.incomplete``) and its resume record.

The record (``<file>.incomplete.json``: URL, ETag / Last-Modified, total size, parallel
segments' progress) allows a resume only for the same URL with a strong validator, and the
server's answer is accepted only with the saved validators. The partial is never opened
through a symlink; a disk error becomes :class:`~omnihub.errors.WriteError`, partial removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from omnihub.cache import atomic_write_text
from omnihub.errors import WriteError
from omnihub.layout import resume_path

__all__ = [
    "Resume",
    "discard",
    "discard_record",
    "hash_prefix",
    "load",
    "open_partial",
    "open_segments",
    "save",
    "size_of",
    "write_error",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


@attrs.frozen
class Resume:
    """What a later attempt needs to continue ``url``; ``segments`` holds
    ``(start, end, done)`` per parallel segment."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None
    segments: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def of(cls, url: str, headers: Mapping[str, str], total: int | None) -> Resume:
        """The record for a response of ``url`` with these headers."""
        return cls(url, headers.get("ETag"), headers.get("Last-Modified"), total)

    @property
    def validator(self) -> str | None:
        """The ``If-Range`` value: a strong ETag, else Last-Modified (weak ETags cannot
        validate a byte range)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified or None

    def matches(self, headers: Mapping[str, str]) -> bool:
        """Whether a ranged response's validators are the saved ones (a server ignoring
        ``If-Range`` sends a range of a changed file with new ones)."""
        for saved, name in ((self.etag, "ETag"), (self.last_modified, "Last-Modified")):
            sent = headers.get(name)
            if saved and sent and sent != saved:
                return False
        return True


def size_of(partial: Path) -> int | None:
    """The partial's size if it is a regular file (never following a symlink), else None."""
    try:
        st = os.lstat(partial)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def load(partial: Path, url: str) -> Resume | None:
    """The resume record of ``partial`` if it belongs to ``url`` and can be resumed."""
    try:
        data = json.loads(resume_path(partial).read_text(encoding="utf-8"))
        record = Resume(
            url=str(data["url"]),
            etag=data.get("etag"),
            last_modified=data.get("last_modified"),
            total=None if data.get("total") is None else int(data["total"]),
            segments=tuple((int(a), int(b), int(c)) for a, b, c in data.get("segments", ())),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if record.url != url or record.validator is None or not size_of(partial):
        return None
    return record


def save(partial: Path, record: Resume) -> bool:
    """Write the resume record; False if it could not be (a lost record costs a restart,
    never a wrong file)."""
    try:
        atomic_write_text(resume_path(partial), json.dumps(attrs.asdict(record)))
    except OSError:
        return False
    return True


def discard(partial: Path) -> None:
    """Remove the partial and its resume record."""
    for path in (partial, resume_path(partial)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def discard_record(partial: Path) -> None:
    """Remove only the resume record (the partial was verified and is about to be published)."""
    with contextlib.suppress(FileNotFoundError):
        resume_path(partial).unlink()


def open_partial(partial: Path, *, append: bool, mode: int = 0o644) -> int:
    """A write descriptor on the partial; a fresh one is created exclusively (a planted
    symlink is never followed), readable by no more than ``mode`` allows."""
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW
    if append:
        flags |= os.O_APPEND
    else:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        flags |= os.O_EXCL
    return os.open(partial, flags, mode & 0o644)


def open_segments(partial: Path, total: int) -> int:
    """A read-write descriptor on the partial, sized to ``total`` (parallel segments)."""
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
    try:
        if os.fstat(fd).st_size != total:
            os.ftruncate(fd, total)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hash_prefix(partial: Path, size: int) -> Any:
    """A sha256 of the partial's first ``size`` bytes (to continue a resumed download)."""
    hasher = hashlib.sha256()
    fd = os.open(partial, os.O_RDONLY | _NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        while size > 0 and (block := fh.read(min(1 << 20, size))):
            hasher.update(block)
            size -= len(block)
    return hasher


def write_error(partial: Path, exc: OSError) -> WriteError:
    """The error for a disk that refused the partial; the partial is removed."""
    discard(partial)
    return WriteError(f"cannot write {partial}: {exc.strerror or exc}; nothing was kept")
