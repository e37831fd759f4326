"""Linux direct I/O for large single streams: received bytes go to the disk, not the page cache.

:func:`direct_body` receives a known-length body into a few page-aligned buffers (anonymous
``mmap``), hashes each buffer on one thread and writes it with ``O_DIRECT`` on another, so
the kernel hands the buffer to the device instead of copying it into freshly allocated
page-cache pages. Why: on the benchmark machine (2 vCPUs) a verified 1 GiB download is
CPU-bound -- receive copy, sha256, and the copy into the page cache -- and that last copy
is the one that swings: writing into page-cache memory the VM has not backed yet took
0.3 s in some runs and 1.3 s in others (``perf``: ``memcpy`` under ``generic_perform_write``
was half of all samples in the slow ones). Direct writes drop that copy and its variance,
leave the user's page cache alone (a 1 GiB model does not evict their working set) and put
the data on the disk by the time it is verified, so the background fsync
(:mod:`omnihub._durable`) has almost nothing left to do.

Bytes whose file range is not aligned to :data:`ALIGN` (the head of a resumed transfer,
the tail of the file) are written through the page cache with ``pwrite``; the buffers are
filled so that memory and file offsets share an alignment, and everything between is
written directly. Two situations turn direct writes off for the rest of a transfer, with
nothing lost: the filesystem refuses them (``EINVAL``: tmpfs, some FUSE and network
filesystems) -- the refused write is redone through the page cache; or the disk, not the
network, holds the download back for long (the receiver spent :data:`STALL_SECONDS` and half
the transfer's time waiting for buffers the writing stage still held: a slow disk, an NFS
home), where the page cache lets the download finish sooner. A disk that is slow for a
moment does not count: on the benchmark VM, the discards after a large unlink slow the
first ~100 MiB of the next transfer, and going back to the page cache there made those
transfers 2.5x slower than waiting out the disk.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from omnihub._stream import pump

__all__ = ["ALIGN", "MIN_SIZE", "DirectWriter", "direct_body", "open_direct"]

logger = logging.getLogger("omnihub")

#: File offsets, lengths and memory addresses of direct writes are multiples of this; 4 KiB
#: covers the logical block size of practically every disk (a larger one refuses the write
#: with EINVAL, which falls back to the page cache).
ALIGN = 4096
#: Bytes per buffer: one direct write each. Measured (1 GiB, loopback nginx): 4 MiB writes
#: keep the device busy with few system calls; 128 KiB ones made the writer the bottleneck.
CHUNK = 4 << 20
#: Buffers in flight (the process's memory grows by ``CHUNK x BUFFERS``).
BUFFERS = 6
#: Most bytes one read is asked for: http.client fills what it is given before returning, so
#: this bounds how long a read blocks on a slow link (12 ms at 20 MB/s), which is how often
#: the switch to parallel ranges and the progress bar get their turn.
READ_SIZE = 256 << 10
#: Bodies smaller than this keep the page cache (nothing to gain from threads and mmaps).
MIN_SIZE = 32 << 20
#: Seconds the receiver may wait on the writing stage (if also half the time so far) before
#: the rest of the transfer goes through the page cache.
STALL_SECONDS = 1.0


def open_direct(fd: int) -> tuple[int, int] | None:
    """``(plain, direct)`` descriptors writing the file open at ``fd``, or None.

    Both are opened anew on the same inode (``/proc/self/fd``), write-only and without
    ``O_APPEND`` (positional writes), one of them with ``O_DIRECT``. None where direct I/O
    is not available: not Linux, or the filesystem refuses ``O_DIRECT`` at open.
    """
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or not sys.platform.startswith("linux"):
        return None
    path = f"/proc/self/fd/{fd}"
    cloexec = getattr(os, "O_CLOEXEC", 0)
    try:
        plain = os.open(path, os.O_WRONLY | cloexec)
    except OSError:
        return None
    try:
        direct = os.open(path, os.O_WRONLY | cloexec | flag)
    except OSError:
        os.close(plain)
        return None
    return plain, direct


def _pwrite_all(fd: int, view: memoryview, position: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], position + done)


class DirectWriter:
    """Write consecutive views from ``position`` on: aligned middles directly, the rest plainly.

    Called in file order by one thread. ``direct`` turns False for good when the
    filesystem refuses a direct write or the receiver waited too long on it (see
    :meth:`congested`); ``reason`` then says why (for the log). ``stalled`` is the seconds
    the receiver has waited on this writer since ``started`` (``time.monotonic()``).
    """

    def __init__(self, plain: int, direct: int, position: int) -> None:
        self.plain = plain
        self.direct_fd = direct
        self.position = position
        self.direct = True
        self.reason = ""
        self.stalled = 0.0
        self.started = time.monotonic()

    def __call__(self, view: memoryview) -> int:
        start = self.position
        end = start + len(view)
        if self.direct:
            first = min(-(-start // ALIGN) * ALIGN, end)
            last = max(end // ALIGN * ALIGN, first)
        else:
            first = last = end
        _pwrite_all(self.plain, view[: first - start], start)
        if last > first:
            done = 0
            try:
                while first + done < last:
                    done += os.pwrite(
                        self.direct_fd, view[first - start + done : last - start], first + done
                    )
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._stop(f"the filesystem refused a direct write at byte {first + done}")
                _pwrite_all(self.plain, view[first - start + done : last - start], first + done)
        _pwrite_all(self.plain, view[last - start :], last)
        self.position = end
        return len(view)

    def congested(self, seconds: float) -> None:
        """The receiver waited ``seconds`` on the writing stage; stop if that adds up.

        Direct writes end once the waits total :data:`STALL_SECONDS` and half the time since
        this writer was made.
        """
        self.stalled += seconds
        elapsed = time.monotonic() - self.started
        if self.direct and self.stalled >= max(STALL_SECONDS, elapsed / 2):
            self._stop(
                f"the disk is slower than the network ({self.stalled:.1f} s of "
                f"{elapsed:.1f} s waiting for it)"
            )

    def _stop(self, reason: str) -> None:
        if self.direct:
            self.direct = False
            self.reason = reason
            logger.debug("direct writes off at byte %d: %s", self.position, reason)


def direct_body(
    readinto: Callable[[memoryview], int | None],
    fd: int,
    *,
    offset: int,
    hasher: Any,
    progress: Callable[[int], object] | None = None,
    stop: Callable[[int], bool] | None = None,
) -> int | None:
    """Receive a body into the file open at ``fd`` from ``offset``; the bytes moved, or None.

    None (nothing read) when direct I/O is not available here; the caller then uses another
    path. Otherwise the contract is :func:`omnihub._stream.pump`'s.
    """
    fds = open_direct(fd)
    if fds is None:
        return None
    plain, direct = fds
    writer = DirectWriter(plain, direct, offset)
    try:
        moved = pump(
            readinto,
            writer,
            hasher,
            progress=progress,
            chunk_size=CHUNK,
            buffers=BUFFERS,
            stop=stop,
            separate_hash=True,
            allocate=_anonymous_map,
            skew=offset % ALIGN,
            on_write_stall=writer.congested,
            read_size=READ_SIZE,
        )
    finally:
        os.close(plain)
        os.close(direct)
    logger.debug(
        "%d bytes in %.2f s, %.2f s of it waiting for the disk; direct writes %s",
        moved,
        time.monotonic() - writer.started,
        writer.stalled,
        "on to the end" if writer.direct else f"off: {writer.reason}",
    )
    return moved


def _anonymous_map(size: int) -> mmap.mmap:
    """A page-aligned buffer (unmapped when the last reference goes)."""
    return mmap.mmap(-1, size)
