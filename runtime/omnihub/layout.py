"""The cache layout: the name of every file omnihub keeps beside a cached model.

``$OMNIHUB_HOME/<framework>/<file>`` is the model (DL4J's layout; the path itself is built
and validated by :func:`omnihub.urls.cache_path`). Beside it:

- ``<file>.incomplete``: the download in progress (resumable);
- ``<file>.incomplete.json``: its resume record (URL, validators, parallel segments);
- ``<file>.omnihub.json``: the record of the verified file (size, mtime, sha256);
- ``<file>.lock``: the per-file lock (never deleted: see :mod:`omnihub.locking`);
- ``<file>.corrupt``: a bad copy moved aside.

Atomic writes go through temporary files named ``<name>.<random>.tmp``. This is the only
module that spells these suffixes; it imports nothing.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: the cache-hit path imports this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CORRUPT",
    "LOCK",
    "PARTIAL",
    "RECORD",
    "RESUME",
    "SIDECARS",
    "TMP",
    "corrupt_path",
    "is_sidecar",
    "lock_path",
    "owner_name",
    "partial_path",
    "record_path",
    "resume_path",
]

PARTIAL = ".incomplete"
RESUME = ".incomplete.json"
RECORD = ".omnihub.json"
LOCK = ".lock"
CORRUPT = ".corrupt"
TMP = ".tmp"
#: Every suffix a model file name may not end with (longest first, for :func:`owner_name`).
SIDECARS = (RESUME, PARTIAL, RECORD, CORRUPT, LOCK)


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def partial_path(path: Path) -> Path:
    """``<file>.incomplete``: where a download of ``path`` is written before it is verified."""
    return _beside(path, PARTIAL)


def resume_path(partial: Path) -> Path:
    """``<file>.incomplete.json`` beside the partial ``<file>.incomplete``: what a later
    attempt needs to resume it."""
    return _beside(partial, RESUME[len(PARTIAL) :])


def record_path(path: Path) -> Path:
    """``<file>.omnihub.json``: the record of the verified file."""
    return _beside(path, RECORD)


def lock_path(path: Path) -> Path:
    """``<file>.lock``: the lock every download of ``path`` takes."""
    return _beside(path, LOCK)


def corrupt_path(path: Path) -> Path:
    """``<file>.corrupt``: where a bad cached copy of ``path`` is moved aside."""
    return _beside(path, CORRUPT)


def owner_name(name: str) -> str | None:
    """The model file name a sidecar (or a temporary file of one) belongs to; None for a
    model file itself."""
    if name.endswith(TMP):
        for suffix in (RESUME, RECORD):
            marker = suffix + "."
            if marker in name:
                return name[: name.index(marker)]
    for suffix in SIDECARS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def is_sidecar(name: str) -> bool:
    """True for any file omnihub keeps beside a model (not a model file)."""
    return owner_name(name) is not None
