"""One lock per cache target, shared by threads and processes alike.

The lock is ``<file>.lock`` beside the target. On POSIX it is a plain ``fcntl.flock`` taken
here directly -- the same lock :class:`filelock.UnixFileLock` takes, so the two exclude each
other -- and :mod:`filelock` is used only where there is no ``fcntl`` (Windows) or the file
system refuses ``flock``. The operating system drops the lock when its owner dies, so a lock
left by a killed process never blocks anyone. Each call opens its own descriptor (its own
open file description), which makes threads of one process exclude each other too.

Why not filelock everywhere: when N processes start at once and ask for one uncached model,
N - 1 of them wait for the one that downloads, and on a small machine every millisecond of CPU
a waiter spends comes out of that download. Importing filelock costs ~26 ms of CPU per process
(it pulls in logging, secrets, dataclasses, inspect, typing...), multiplied by every waiter --
the 16-process benchmark missed its target by that alone. The lock itself is a few syscalls,
so this module imports only ``os``, ``sys``, ``errno``, ``contextlib`` and ``fcntl`` on POSIX:
no third-party module, and neither ``threading``, ``logging`` nor ``typing``, on any path.

The protocol, per attempt: open ``<file>.lock`` (``O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC``,
mode 0o644) and try a non-blocking exclusive ``flock``. Once it is granted, check that the
descriptor still names the path (same inode and device, link count above zero): whoever unlinks
a lock file does so while holding it, so a lock taken on an unlinked inode guards nothing and
the attempt starts over. When the lock is held elsewhere, block on a *shared* ``flock`` of a
second descriptor -- granted the moment the holder lets go, to every waiter at once, with no
polling and no CPU spent -- then ask ``ready()`` whether the holder already did the work, and
try again if not.

A wait longer than :data:`WAIT_NOTICE_SECONDS` is logged at INFO on the ``omnihub`` logger. An
application that never imported :mod:`logging` cannot emit that record anyway, so the notice
timer (and :mod:`threading`) is started only when ``logging`` is already in ``sys.modules``.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: filelock's LockFileEx lock instead
    _HAVE_FLOCK = False
else:
    _HAVE_FLOCK = True

# Not ``from typing import TYPE_CHECKING``: importing typing costs milliseconds per process.
# mypy treats any TYPE_CHECKING constant as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from filelock import BaseFileLock

__all__ = ["POLL_SECONDS", "WAIT_NOTICE_SECONDS", "lock_path", "target_lock", "try_target_lock"]

#: How often a waiter polls where it cannot block on ``flock`` (Windows, ``flock``-less file
#: systems); with ``flock`` a waiter wakes the moment the lock is released.
POLL_SECONDS = 0.01
#: After this long waiting for another download of the same file, say so in the log.
WAIT_NOTICE_SECONDS = 2.0

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_WAIT_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_LOCK_MODE = 0o644
#: What a refused non-blocking ``flock`` reports (EACCES on some file systems).
_CONTENTION = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})


class _NoFlock(Exception):
    """``flock`` failed on this file system for a reason other than contention."""


def lock_path(target: Path) -> Path:
    """``<file>.lock`` beside ``target``."""
    return target.with_name(target.name + ".lock")


def _names(fd: int, path: str) -> bool:
    """True if ``fd`` is still the file at ``path`` (not unlinked, not replaced)."""
    held = os.fstat(fd)
    if held.st_nlink == 0:
        return False
    try:
        current = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev)


def _release(fd: int) -> None:
    """Unlock explicitly (a forked child may share the descriptor), then close."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(path: str) -> int | None:
    """The descriptor holding ``path``'s exclusive lock, or None if it is held elsewhere.

    Raises :class:`OSError` when the lock file cannot be opened (read-only directory, a
    symlink planted in its place) and :class:`_NoFlock` when ``flock`` is not supported.
    """
    while True:
        fd = os.open(path, _OPEN_FLAGS, _LOCK_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _CONTENTION:
                return None
            raise _NoFlock(str(exc)) from exc
        except BaseException:
            os.close(fd)
            raise
        try:
            if _names(fd, path):
                return fd
        except BaseException:
            _release(fd)
            raise
        _release(fd)  # the file was unlinked or replaced since we opened it: start over


def _wait_released(path: str) -> None:
    """Block until the current holder of ``path``'s lock lets go (POSIX).

    Takes and drops a *shared* ``flock`` on a separate descriptor: it is granted the moment
    the exclusive holder lets go, to every waiter at once. A lock file that vanished in the
    meantime ends the wait at once. The descriptor needs no identity check: a wait only
    decides when to look again, and the next attempt starts from the path (a wait granted on
    a file unlinked meanwhile costs one more attempt, never a second holder).
    """
    try:
        fd = os.open(path, _WAIT_FLAGS)
    except OSError:
        return  # unlinked or replaced since the attempt: try again
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError as exc:
        os.close(fd)
        raise _NoFlock(str(exc)) from exc
    except BaseException:
        os.close(fd)
        raise
    _release(fd)


def _wait_notice(label: str, target: Path) -> None:
    """Log that a wait is long (runs on the notice timer's thread)."""
    import logging

    logging.getLogger("omnihub").info(
        "%s: waiting for another process downloading %s", label, target
    )


def _start_notice(label: str, target: Path) -> threading.Timer | None:
    """Start the long-wait notice timer, only if the application already imported logging.

    Without :mod:`logging` imported nobody configured a handler, so the INFO record could not
    be shown: starting a thread (and importing :mod:`threading`) would be pure cost.
    """
    if "logging" not in sys.modules:
        return None
    import threading

    notice = threading.Timer(WAIT_NOTICE_SECONDS, _wait_notice, (label, target))
    notice.daemon = True
    notice.start()
    return notice


def _flock_acquire(
    path: str, target: Path, label: str, ready: Callable[[], bool] | None
) -> int | None:
    """Hold ``path``'s lock and return its descriptor; None if ``ready()`` ended the wait."""
    notice: threading.Timer | None = None
    started = False
    try:
        while True:
            fd = _try_flock(path)
            if fd is not None:
                return fd
            if not started:
                started = True
                notice = _start_notice(label, target)
            _wait_released(path)
            if ready is not None and ready():
                return None
    finally:
        if notice is not None:
            notice.cancel()


def _filelock_acquire(
    path: str, target: Path, label: str, ready: Callable[[], bool] | None
) -> BaseFileLock | None:
    """:func:`_flock_acquire` with :mod:`filelock`, polling (no ``fcntl``, or no ``flock``)."""
    from filelock import FileLock, Timeout

    lock = FileLock(path, thread_local=False, poll_interval=POLL_SECONDS)
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        pass
    notice = _start_notice(label, target)
    try:
        while True:
            try:
                lock.acquire(timeout=-1, cancel_check=ready)
                return lock
            except Timeout:  # cancelled: ready() said the work is done
                if ready is not None and ready():
                    return None
    finally:
        if notice is not None:
            notice.cancel()


def _acquire(
    path: str, target: Path, label: str, ready: Callable[[], bool] | None
) -> Callable[[], None] | None:
    """Take ``path``'s lock, waiting; its release function, or None if ``ready()`` ended the
    wait. ``flock`` where there is one, else (or where the file system refuses it) filelock."""
    if _HAVE_FLOCK:
        try:
            fd = _flock_acquire(path, target, label, ready)
        except _NoFlock:
            pass  # e.g. a file system without flock: let filelock decide
        else:
            return None if fd is None else lambda: _release(fd)
    lock = _filelock_acquire(path, target, label, ready)
    return None if lock is None else lock.release


def _try_acquire(path: str) -> Callable[[], None] | None:
    """Take ``path``'s lock if it is free this instant; its release function, or None (busy,
    or the lock file cannot be opened)."""
    if _HAVE_FLOCK:
        try:
            fd = _try_flock(path)
        except OSError:
            return None
        except _NoFlock:
            pass
        else:
            return None if fd is None else lambda: _release(fd)
    from filelock import FileLock, Timeout

    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return None
    return lock.release


@contextmanager
def _holding(release: Callable[[], None] | None) -> Iterator[bool]:
    """Yield whether a lock was taken (``release`` is not None); release it afterwards."""
    if release is None:
        yield False
        return
    try:
        yield True
    finally:
        release()


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
    path = os.fspath(lock_path(target))
    with _holding(_acquire(path, target, label, ready)) as held:
        yield held


@contextmanager
def try_target_lock(target: Path) -> Iterator[bool]:
    """Take ``target``'s lock if it is free right now; yields whether it was taken.

    Used by cache maintenance, which must never disturb a download in progress. A lock file
    that cannot be opened counts as busy.
    """
    with _holding(_try_acquire(os.fspath(lock_path(target)))) as held:
        yield held
