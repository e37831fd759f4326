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

__all__ = ["WAIT_NOTICE_SECONDS", "lock_path", "target_lock", "try_target_lock"]

#: After this long waiting for another download of the same file, say so in the log.
WAIT_NOTICE_SECONDS = 2.0


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

    A waiter polls, 10 ms growing to 100 ms apart (N waiters must not take CPU from the
    download they wait for), and asks ``ready()`` each time: once the work is done (a
    verified file was just published) it stops waiting and yields False, without the lock.
    After :data:`WAIT_NOTICE_SECONDS` the wait is logged. Raises :class:`OSError` when the
    lock file cannot be created (read-only directory).
    """
    notice_at = time.monotonic() + WAIT_NOTICE_SECONDS
    delay = 0.01
    waited = False
    while (lock := _take(target)) is None:
        waited = True
        if ready is not None and ready():
            yield False
            return
        if time.monotonic() >= notice_at:
            notice_at = float("inf")
            import logging

            logging.getLogger("omnihub").info(
                "%s: waiting for another process downloading %s", label, target
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)
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
