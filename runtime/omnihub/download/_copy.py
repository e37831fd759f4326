"""Copy a byte stream into a file descriptor, hashing each chunk as it passes.

The one writer of single streams and ``file://`` mirrors. One buffer, sized to the file
(at most :data:`CHUNK`), is reused for every read, so memory stays flat whatever the size.
A write error surfaces as :class:`WriteFailed`, distinct from a read-side ``OSError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["CHUNK", "WriteFailed", "buffer_size", "copy"]

#: The largest read and write; a smaller file gets a buffer of its own size.
CHUNK = 1 << 20
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

    ``limit`` stops after that many bytes (a body that may not be trusted to end);
    ``stop(moved)``, asked after every chunk, ends the copy early when it says so.
    """
    buf = bytearray(size)
    view = memoryview(buf)
    moved = 0
    while limit is None or moved < limit:
        want = view if limit is None else view[: min(size, limit - moved)]
        n = readinto(want)
        if not n:
            break
        chunk = view[:n]
        try:
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
        except OSError as exc:
            raise WriteFailed(exc) from None
        hasher.update(view[:n])
        moved += n
        progress(n)
        if stop is not None and stop(moved):
            break
    return moved
