"""When a downloaded file becomes durable: before it is published, or just after.

A cache record says "this file is verified"; the cheap hit test then trusts size and mtime,
not content. So a record must never outlive the data it describes: after a crash, a file
whose pages never reached the disk can come back truncated or zero-filled with the right
size (XFS, ext4 without ``auto_da_alloc``...).

Two ways to honour that:

- **fsync, then publish** (portable): the downloaded bytes are fsynced before the file is
  renamed into place and its record written. The caller waits for the disk -- on this
  project's test VM, 0.7 to 2.5 s per GiB depending on the minute.
- **publish, then fsync** (Linux): the record names the boot it was written in
  (``/proc/sys/kernel/random/boot_id``) and the file is fsynced by a background thread, which
  then rewrites the record without the boot id. Until then a record with a boot id is trusted
  only during that same boot: unsynced data cannot be lost without a crash, and a crash means a
  reboot, so after one such a record fails the hit test and the file is rehashed (and repaired
  or re-downloaded) before use. The caller gets its model as soon as it is verified; the
  thread is not a daemon, so the interpreter waits for it at exit, and a process killed before
  it finishes leaves a record that is still safe.

This module decides which (:func:`deferred`), and does the background part (:func:`settle`).
"""

from __future__ import annotations

import os

# Not ``from typing import TYPE_CHECKING``: :func:`boot_id` is on the cache-hit path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from pathlib import Path

    from omnihub.cache import Record

__all__ = [
    "BOOT_ID_PATH",
    "boot_id",
    "deferred",
    "settle",
    "sync_directory",
    "sync_file",
    "wait_settled",
]

#: Where Linux publishes a random id that changes at every boot.
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_boot: list[str | None] = []
#: Settling threads started by this process (finished ones are dropped as new ones start).
_settling: list[threading.Thread] = []


def boot_id() -> str | None:
    """This boot's id (read once per process), or None where there is none (not Linux)."""
    if not _boot:
        try:
            with open(BOOT_ID_PATH, "rb") as fh:
                value: str | None = fh.read(64).decode("ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            value = None
        _boot.append(value)
    return _boot[0]


def deferred() -> bool:
    """True when a download is published first and made durable in the background."""
    return boot_id() is not None


def sync_file(path: Path) -> None:
    """fsync ``path``'s data (cheap when it is clean already)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so a rename inside it survives a crash (POSIX; no-op elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def settle(path: Path, record: Record, *, label: str) -> None:
    """Make the just-published ``path`` durable in a background thread, then mark ``record``.

    The thread is not a daemon: the interpreter waits for it at exit.
    """
    import threading

    thread = threading.Thread(
        target=_settle, args=(path, record, label), name="omnihub-settle", daemon=False
    )
    _settling[:] = [t for t in _settling if t.is_alive()]
    _settling.append(thread)
    thread.start()


def wait_settled() -> None:
    """Wait until every file this process published is durable and its record marked so.

    The interpreter does this at exit anyway; call it before touching cache files by hand
    right after a download (tests, maintenance scripts).
    """
    for thread in list(_settling):
        thread.join()


def _settle(path: Path, record: Record, label: str) -> None:
    import logging

    from omnihub._value import evolve
    from omnihub.cache import write_record
    from omnihub.locking import try_target_lock

    logger = logging.getLogger("omnihub")
    try:
        try:
            sync_file(path)
            sync_directory(path.parent)
        except FileNotFoundError:
            return  # removed meanwhile (cache rm): nothing to make durable
        except OSError as exc:
            logger.warning(
                "%s: could not make %s durable (%s); %s",
                label,
                path,
                exc,
                "the next use downloads it again"
                if _mark_lost(path, record, label)
                else "a newer download has replaced it",
            )
            return
        with try_target_lock(path) as free:
            # Busy: another download of this file is replacing it; its record is its own.
            if free and _still_published(path, record):
                write_record(path, evolve(record, boot_id=None))
    except FileNotFoundError:
        return  # removed meanwhile (cache rm, a temporary home): nothing left to mark
    except Exception:  # a background thread must not die with a traceback on stderr
        logger.warning("%s: could not mark %s durable", label, path, exc_info=True)


def _mark_lost(path: Path, record: Record, label: str) -> bool:
    """Mark ``path``'s record lost after the disk failed to keep its data (see
    :func:`omnihub.cache.mark_lost`); False when a newer download has replaced the file
    meanwhile. Waits for the file's lock, so that no download publishing it at the same
    moment is disturbed.
    """
    from omnihub.cache import mark_lost
    from omnihub.locking import target_lock

    with target_lock(path, label=label):
        if not _still_published(path, record):
            return False
        mark_lost(path, record)
    return True


def _still_published(path: Path, record: Record) -> bool:
    """True if ``path`` and its record are still the ones this process published (no newer
    download replaced them). Call with the file's lock held."""
    from omnihub.cache import read_record

    if read_record(path) != record:
        return False
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns)
