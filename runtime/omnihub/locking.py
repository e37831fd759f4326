"""One lock per cache target, shared by threads and processes alike.

The lock is ``<file>.lock`` beside the target, taken with :mod:`filelock` (``flock`` on
POSIX, ``LockFileEx`` on Windows). The operating system drops such a lock when its owner
dies, so a lock left by a killed process never blocks anyone. Each call opens its own lock
object (its own file descriptor), which makes threads of one process exclude each other too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["POLL_SECONDS", "WAIT_NOTICE_SECONDS", "lock_path", "target_lock", "try_target_lock"]

logger = logging.getLogger("omnihub")

#: How often a waiting process retries the lock (it is released the moment the download ends).
POLL_SECONDS = 0.01
#: After this long waiting for another download of the same file, say so in the log.
WAIT_NOTICE_SECONDS = 2.0


def lock_path(target: Path) -> Path:
    """``<file>.lock`` beside ``target``."""
    return target.with_name(target.name + ".lock")


@contextmanager
def target_lock(
    target: Path, *, label: str = "model", ready: Callable[[], bool] | None = None
) -> Iterator[bool]:
    """Hold ``target``'s lock for the ``with`` block, waiting as long as needed; yields True.

    While waiting, ``ready()`` is asked at every poll: once it says the work is done (another
    process has just published a verified file), the wait ends *without* the lock and False
    is yielded -- so N waiting processes all return the moment the download ends instead of
    taking the lock one after another. Raises :class:`OSError` when the lock file cannot be
    created (read-only directory).
    """
    from filelock import FileLock, Timeout  # noqa: PLC0415 -- only on a cache miss

    lock = FileLock(str(lock_path(target)), thread_local=False, poll_interval=POLL_SECONDS)
    try:
        lock.acquire(timeout=WAIT_NOTICE_SECONDS, cancel_check=ready)
    except Timeout:
        if ready is not None and ready():
            yield False
            return
        logger.info("%s: waiting for another process downloading %s", label, target)
        try:
            lock.acquire(timeout=-1, cancel_check=ready)
        except Timeout:
            yield False
            return
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def try_target_lock(target: Path) -> Iterator[bool]:
    """Take ``target``'s lock if it is free right now; yields whether it was taken.

    Used by cache maintenance, which must never disturb a download in progress.
    """
    from filelock import FileLock, Timeout  # noqa: PLC0415

    lock = FileLock(str(lock_path(target)), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
