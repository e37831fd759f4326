"""One lock per cached file, ``<file>.lock``, shared by threads and processes: :mod:`filelock`.

``flock`` on POSIX, ``LockFileEx`` on Windows: the operating system drops a lock when its
owner dies, so a killed holder blocks nobody. Every acquisition opens its own
:class:`filelock.FileLock` (its own open file description), so threads of one process
exclude each other too. Lock files are never deleted -- not on release, not by ``cache rm``
or ``prune`` -- so every holder locks the same inode. filelock opens them without following
symlinks and, in a child forked while the lock is held (a DataLoader worker), closes the
inherited descriptor (filelock >= 3.30), so the lock ends with its owner
(tests/reliability/test_reliability_integrity.py, the fork test).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from omnihub.layout import lock_path

if TYPE_CHECKING:
    from pathlib import Path

    from filelock import FileLock

__all__ = [
    "LOCK_POLL_SECONDS",
    "READY_POLL_SECONDS",
    "WAIT_NOTICE_SECONDS",
    "lock_path",
    "target_lock",
    "try_target_lock",
]

#: After this long waiting for another download of the same file, say so in the log.
WAIT_NOTICE_SECONDS = 2.0
#: How often a waiter asks whether the file it waits for was published.
READY_POLL_SECONDS = 0.01
#: The longest interval between a waiter's attempts to take the lock itself.
LOCK_POLL_SECONDS = 0.1


def _take(target: Path) -> FileLock | None:
    """``target``'s lock if it is free right now, else None; OSError if it cannot be opened."""
    from filelock import FileLock, Timeout

    lock = FileLock(lock_path(target), thread_local=False, preserve_lock_file=True, mode=0o644)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


@contextmanager
def target_lock(
    target: Path, *, label: str = "model", ready: Callable[[], bool] | None = None
) -> Iterator[bool]:
    """Hold ``target``'s lock for the ``with`` block, waiting as long as needed; yields True.

    A waiter asks ``ready()`` every :data:`READY_POLL_SECONDS` (a ``stat`` and a small read):
    once the work is done (a verified file was just published) it stops waiting and yields
    False, without the lock. It tries the lock itself (about 0.1 ms of filelock's checks)
    10 ms growing to :data:`LOCK_POLL_SECONDS` apart, which matters only when the holder
    fails or dies. So N waiters notice a published file within a few milliseconds without
    taking CPU from the download they wait for. After :data:`WAIT_NOTICE_SECONDS` the wait is
    logged. Raises :class:`OSError` when the lock file cannot be created (read-only directory).
    """
    now = time.monotonic()
    notice_at, try_at, delay = now + WAIT_NOTICE_SECONDS, now, 0.01
    waited = False
    while True:
        if now >= try_at:
            lock = _take(target)
            if lock is not None:
                break
            try_at, delay = now + delay, min(delay * 1.5, LOCK_POLL_SECONDS)
        elif ready is not None and ready():
            yield False
            return
        waited = True
        if now >= notice_at:
            notice_at = float("inf")
            import logging

            logging.getLogger("omnihub").info(
                "%s: waiting for another process downloading %s", label, target
            )
        time.sleep(READY_POLL_SECONDS if ready is not None else max(try_at - now, 0.0))
        now = time.monotonic()
    if waited and ready is not None and ready():  # done just as the holder let go
        lock.release()
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def try_target_lock(target: Path) -> Iterator[bool]:
    """Take ``target``'s lock if it is free right now; yields whether it was taken.

    Cache maintenance uses it so that it never disturbs a download in progress. A lock file
    that cannot be opened counts as busy.
    """
    try:
        lock = _take(target)
    except OSError:
        lock = None
    if lock is None:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
