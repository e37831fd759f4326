"""Copy a byte stream into a file descriptor, hashing each chunk: the one writer of every
single-stream source. Each chunk is the ``bytes`` the source returns, written and hashed as
it is (no copy into a buffer of ours); a write error is :class:`WriteFailed`, distinct from a
read-side error."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CHUNK", "IN_FLIGHT", "THREAD_MIN", "WriteFailed", "chunk_size", "copy"]

#: The largest read; a smaller file is read in chunks of its own size.
CHUNK = 1 << 20
#: Chunks read but not yet hashed, at most (bounds memory while the hash catches up).
IN_FLIGHT = 4
#: Copies of at most this many bytes hash in the receiving thread (no thread to start).
THREAD_MIN = 4 << 20
_MIN = 64 << 10


class WriteFailed(Exception):
    """Writing to the local file failed; ``error`` is the underlying :class:`OSError`."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


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
    moved = 0
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
        progress(len(data))
        if stop is not None and stop(moved):
            break
    return moved
