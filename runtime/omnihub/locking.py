"""One lock per cache target, shared by threads and processes alike.

The lock is ``<file>.lock`` beside the target, taken with :mod:`filelock` (``flock`` on
POSIX, ``LockFileEx`` on Windows). The operating system drops such a lock when its owner
dies, so a lock left by a killed process never blocks anyone. Each call opens its own lock
object (its own file descriptor), which makes threads of one process exclude each other too.
"""

from __future__ import annotations

import logging
import os
import threading
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


def _wait_released(path: Path) -> bool:
    """Block until the current holder of ``path``'s lock releases it (POSIX); False if unsupported.

    Takes and drops a *shared* ``flock`` on a separate descriptor: it is granted the moment the
    exclusive holder lets go, to every waiter at once, with no polling and no CPU spent.
    """
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


@contextmanager
def target_lock(
    target: Path, *, label: str = "model", ready: Callable[[], bool] | None = None
) -> Iterator[bool]:
    """Hold ``target``'s lock for the ``with`` block, waiting as long as needed; yields True.

    While another process holds it, ``ready()`` is asked each time that process lets go (on
    POSIX: a blocking shared ``flock``, so waiting costs nothing and all waiters wake together;
    elsewhere: at every poll). Once it says the work is done -- a verified file was just
    published -- the wait ends *without* the lock and False is yielded, so N waiting processes
    return the moment the download ends instead of taking the lock one after another.
    Raises :class:`OSError` when the lock file cannot be created (read-only directory).
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path(target)), thread_local=False, poll_interval=POLL_SECONDS)
    notice = threading.Timer(
        WAIT_NOTICE_SECONDS,
        logger.info,
        ("%s: waiting for another process downloading %s", label, target),
    )
    notice.daemon = True
    try:
        while True:
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:
                pass
            if not notice.is_alive() and not notice.finished.is_set():
                notice.start()
            if not _wait_released(lock_path(target)):
                try:  # no flock to wait on: poll
                    lock.acquire(timeout=-1, cancel_check=ready)
                    break
                except Timeout:
                    pass
            if ready is not None and ready():
                yield False
                return
    finally:
        notice.cancel()
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def try_target_lock(target: Path) -> Iterator[bool]:
    """Take ``target``'s lock if it is free right now; yields whether it was taken.

    Used by cache maintenance, which must never disturb a download in progress.
    """
    from filelock import FileLock, Timeout

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
