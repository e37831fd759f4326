"""Copy a byte stream into a file descriptor, hashing each chunk: the one writer of every
single-stream source. Buffers sized to the file (at most :data:`CHUNK`) are reused; a write
error is :class:`WriteFailed`, distinct from a read-side error."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BUFFERS", "CHUNK", "THREAD_MIN", "WriteFailed", "buffer_size", "copy"]

#: The largest read and write; a smaller file gets a buffer of its own size.
CHUNK = 1 << 20
#: Buffers in flight between the receiving and the hashing thread.
BUFFERS = 4
#: Copies of at most this many bytes hash in the receiving thread (no thread to start).
THREAD_MIN = 4 << 20
_MIN = 64 << 10


class WriteFailed(Exception):
    """Writing to the local file failed; ``error`` is the underlying :class:`OSError`."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def buffer_size(left: int | None) -> int:
    """A buffer for ``left`` more bytes (unknown: the largest)."""
    return CHUNK if left is None else max(_MIN, min(CHUNK, left + 1))


def copy(
    readinto: Callable[[memoryview], int | None],
    fd: int,
    hasher: Any,
    *,
    size: int = CHUNK,
    limit: int | None = None,
    progress: Callable[[int], object] = lambda n: None,
    stop: Callable[[int], bool] | None = None,
) -> int:
    """Move what ``readinto`` yields to ``fd``, updating ``hasher``; return the bytes moved.

    Stops after ``limit`` bytes, or when ``stop(moved)`` says so. Large copies hash on a
    second thread (:data:`BUFFERS` buffers in flight), joined before this returns or raises,
    so ``hasher`` always holds exactly the bytes moved.
    """
    if limit is not None and limit <= THREAD_MIN:
        buf = bytearray(size)

        def hash_now(used: bytearray, n: int) -> None:
            hasher.update(memoryview(used)[:n])

        return _pump(readinto, fd, lambda: buf, hash_now, limit=limit, progress=progress, stop=stop)
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
    for _ in range(BUFFERS):
        free.put(bytearray(size))

    def hash_all() -> None:
        while (item := full.get()) is not None:
            hasher.update(memoryview(item[0])[: item[1]])
            free.put(item[0])

    thread = threading.Thread(target=hash_all, name="omnihub-hash", daemon=True)
    thread.start()
    try:
        return _pump(
            readinto,
            fd,
            free.get,
            lambda used, n: full.put((used, n)),
            limit=limit,
            progress=progress,
            stop=stop,
        )
    finally:
        full.put(None)
        thread.join()


def _pump(
    readinto: Callable[[memoryview], int | None],
    fd: int,
    take: Callable[[], bytearray],
    done: Callable[[bytearray, int], object],
    *,
    limit: int | None,
    progress: Callable[[int], object],
    stop: Callable[[int], bool] | None,
) -> int:
    """The copy loop: ``take`` a buffer, read into it, write it, hand it to ``done`` (the
    hash, which gives it back when it is through)."""
    moved = 0
    while limit is None or moved < limit:
        buf = take()
        view = memoryview(buf)
        n = readinto(view if limit is None else view[: min(len(buf), limit - moved)])
        if not n:
            done(buf, 0)  # gives the buffer back
            break
        chunk = view[:n]
        try:
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
        except OSError as exc:
            done(buf, 0)
            raise WriteFailed(exc) from None
        done(buf, n)
        moved += n
        progress(n)
        if stop is not None and stop(moved):
            break
    return moved
