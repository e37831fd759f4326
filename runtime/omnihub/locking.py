"""One lock per cached file, shared by threads and processes alike: :mod:`filelock`.

The lock is ``<file>.lock`` beside the target (``flock`` on POSIX, ``LockFileEx`` on
Windows). The operating system drops it when its owner dies, so a lock left by a killed
process blocks nobody. Each call makes its own :class:`filelock.FileLock` (its own open file
description), so threads of one process exclude each other too. Lock files are never
deleted -- not on release, not by ``cache rm``/``prune`` -- so every holder always locks the
same inode and no identity check is needed. filelock opens them without following symlinks.

fork(): a child forked while a lock is held (a DataLoader worker) does not keep it. ``flock``
belongs to the open file description the child inherits, so the lock would otherwise live
until the unrelated child exits; filelock (>= 3.30, the declared lower bound) drops the
child's descriptors in an at-fork handler, so the lock ends with its owner
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
    "POLL_MAX_SECONDS",
    "POLL_SECONDS",
    "WAIT_NOTICE_SECONDS",
    "lock_path",
    "target_lock",
    "try_target_lock",
]

#: How soon a waiter tries the lock again (and asks ``ready()``), growing to the maximum.
POLL_SECONDS = 0.01
POLL_MAX_SECONDS = 0.1
#: After this long waiting for another download of the same file, say so in the log.
WAIT_NOTICE_SECONDS = 2.0


def _lock(target: Path) -> FileLock:
    from filelock import FileLock

    return FileLock(
        lock_path(target),
        thread_local=False,
        preserve_lock_file=True,
        mode=0o644,
    )


@contextmanager
def target_lock(
    target: Path, *, label: str = "model", ready: Callable[[], bool] | None = None
) -> Iterator[bool]:
    """Hold ``target``'s lock for the ``with`` block, waiting as long as needed; yields True.

    While another holder has it, the lock is tried again after :data:`POLL_SECONDS`, then
    ever less often (up to :data:`POLL_MAX_SECONDS`: N waiters must not take CPU from the
    download they wait for), and ``ready()`` is asked each time; once it says the work is
    done (a verified file was just published) the wait ends *without* the lock and False is
    yielded. Raises :class:`OSError` when the lock file cannot be created (read-only
    directory).
    """
    from filelock import Timeout

    lock = _lock(target)
    started = time.monotonic()
    delay = POLL_SECONDS
    noticed = waited = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            waited = True
        if ready is not None and ready():
            yield False
            return
        if not noticed and time.monotonic() - started >= WAIT_NOTICE_SECONDS:
            noticed = True
            import logging

            logging.getLogger("omnihub").info(
                "%s: waiting for another process downloading %s", label, target
            )
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_SECONDS)
    if waited and ready is not None and ready():
        lock.release()  # done just as the holder let go
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
    from filelock import Timeout

    lock = _lock(target)
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
