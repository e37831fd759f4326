"""Copy a byte stream into a file descriptor, hashing each chunk: the one writer of every
single-stream source. Each chunk is the ``bytes`` the source returns, written and hashed as
it is (no copy into a buffer of ours); a write error is :class:`WriteFailed`, distinct from a
read-side error. Every :data:`WRITEBACK_WINDOW` written is handed to the kernel's writeback
at once (:func:`start_writeback`), so the fsync before publishing finds little left to write:
the disk works while the network does, instead of after it."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "CHUNK",
    "IN_FLIGHT",
    "THREAD_MIN",
    "WRITEBACK_WINDOW",
    "WriteFailed",
    "chunk_size",
    "copy",
    "start_writeback",
]

#: The largest read; a smaller file is read in chunks of its own size.
CHUNK = 1 << 20
#: Chunks read but not yet hashed, at most (bounds memory while the hash catches up).
IN_FLIGHT = 4
#: Copies of at most this many bytes hash in the receiving thread (no thread to start).
THREAD_MIN = 4 << 20
#: Bytes written between two :func:`start_writeback` calls.
WRITEBACK_WINDOW = 8 << 20
_MIN = 64 << 10
# Linux: POSIX_FADV_DONTNEED starts writeback of dirty pages and keeps them (mm/fadvise.c);
# elsewhere it may only drop clean pages, which would cost a re-read when the model is loaded.
_WRITEBACK = sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")


class WriteFailed(Exception):
    """Writing to the local file failed; ``error`` is the underlying :class:`OSError`."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing bytes ``[offset, offset + length)`` of ``fd`` (written
    already) now, without waiting for it (Linux; a no-op elsewhere). The pages stay cached:
    loading the model after the download reads memory, not the disk. Best effort: an error
    changes nothing."""
    if _WRITEBACK and length > 0:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def chunk_size(left: int | None) -> int:
    """The read size for ``left`` more bytes (unknown: the largest)."""
    return CHUNK if left is None else max(_MIN, min(CHUNK, left + 1))


def copy(
    read: Callable[[int], bytes],
    fd: int,
    hasher: Any,
    *,
    size: int = CHUNK,
    limit: int | None = None,
    progress: Callable[[int], object] = lambda n: None,
    stop: Callable[[int], bool] | None = None,
) -> int:
    """Write what ``read(size)`` yields to ``fd``, updating ``hasher``; return the bytes moved.

    Stops at an empty read, after ``limit`` bytes, or when ``stop(moved)`` says so. Large
    copies hash on a second thread (at most :data:`IN_FLIGHT` chunks behind), joined before
    this returns or raises, so ``hasher`` always holds exactly the bytes moved.
    """
    if limit is not None and limit <= THREAD_MIN:
        return _pump(read, fd, hasher.update, size=size, limit=limit, progress=progress, stop=stop)
    chunks: queue.Queue[bytes | None] = queue.Queue(IN_FLIGHT)

    def hash_all() -> None:
        for chunk in iter(chunks.get, None):
            hasher.update(chunk)

    thread = threading.Thread(target=hash_all, name="omnihub-hash", daemon=True)
    thread.start()
    try:
        return _pump(read, fd, chunks.put, size=size, limit=limit, progress=progress, stop=stop)
    finally:
        chunks.put(None)
        thread.join()


def _pump(
    read: Callable[[int], bytes],
    fd: int,
    done: Callable[[bytes], object],
    *,
    size: int,
    limit: int | None,
    progress: Callable[[int], object],
    stop: Callable[[int], bool] | None,
) -> int:
    """The copy loop: read a chunk, write all of it, hand it to ``done`` (the hash)."""
    moved = unsynced = 0
    while limit is None or moved < limit:
        data = read(size if limit is None else min(size, limit - moved))
        if not data:
            break
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise WriteFailed(exc) from None
        done(data)
        moved += len(data)
        unsynced += len(data)
        if unsynced >= WRITEBACK_WINDOW:
            with contextlib.suppress(OSError):  # where the window starts: we append
                start_writeback(fd, os.lseek(fd, 0, os.SEEK_CUR) - unsynced, unsynced)
            unsynced = 0
        progress(len(data))
        if stop is not None and stop(moved):
            break
    return moved
