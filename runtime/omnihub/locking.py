"""One lock per cache target, shared by threads and processes alike.

The lock is ``<file>.lock`` beside the target, taken with :mod:`filelock` (``flock`` on
POSIX, ``LockFileEx`` on Windows). The operating system drops such a lock when its owner
dies, so a lock left by a killed process never blocks anyone. Each call opens its own lock
object (its own file descriptor), which makes threads of one process exclude each other too.

On POSIX a process first probes the lock with a plain non-blocking shared ``flock``: when
another process is downloading, it waits and returns without ever importing filelock (a
waiter's whole cost is the interpreter and the cache check; it matters when many processes
start at once on a small machine).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["POLL_SECONDS", "WAIT_NOTICE_SECONDS", "lock_path", "target_lock", "try_target_lock"]

#: How often a waiting process retries the lock (it is released the moment the download ends).
POLL_SECONDS = 0.01
#: After this long waiting for another download of the same file, say so in the log.
WAIT_NOTICE_SECONDS = 2.0


def lock_path(target: Path) -> Path:
    """``<file>.lock`` beside ``target``."""
    return target.with_name(target.name + ".lock")


def _held_elsewhere(path: Path) -> bool:
    """True if another descriptor holds ``path``'s lock exclusively right now (POSIX only).

    A non-blocking *shared* ``flock`` on a read-only descriptor: refused only while someone
    holds the exclusive lock. A missing lock file, or no ``flock`` here, answers False (the
    caller then takes the ordinary :mod:`filelock` path).
    """
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the probe's shared lock, if it got one
    return False


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


def _wait_notice(label: str, target: Path) -> None:
    """Log that a wait is long; imports logging only then (a short wait never pays for it)."""
    import logging

    logging.getLogger("omnihub").info(
        "%s: waiting for another process downloading %s", label, target
    )


def _try_acquire(lock: BaseFileLock) -> bool:
    """Take ``lock`` if it is free this instant."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
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
    path = lock_path(target)
    notice = threading.Timer(WAIT_NOTICE_SECONDS, _wait_notice, (label, target))
    notice.daemon = True
    lock: BaseFileLock | None = None
    try:
        while True:
            if not _held_elsewhere(path):
                if lock is None:
                    from filelock import FileLock

                    lock = FileLock(str(path), thread_local=False, poll_interval=POLL_SECONDS)
                if _try_acquire(lock):
                    break
            if not notice.is_alive() and not notice.finished.is_set():
                notice.start()
            if not _wait_released(path):
                from filelock import FileLock, Timeout

                if lock is None:
                    lock = FileLock(str(path), thread_local=False, poll_interval=POLL_SECONDS)
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
    assert lock is not None  # the loop only breaks once it holds the lock
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
