"""Copy a byte stream into a file while hashing it, receiving and writing on two threads.

The receiving thread fills a few large reused buffers (no per-chunk allocation); a second
thread takes every full buffer, in order, writes it and then hashes it (still in its core's
cache), and the buffer is reused once that is done. sha256, ``recv`` and ``write`` all
release the GIL on large buffers, so the network overlaps with the disk and the hash --
which is what lets a Python download keep up with curl -- while memory stays at a fixed
``BUFFERS x CHUNK_SIZE`` whatever the file size. (:data:`SEPARATE_HASH_THREAD` gives the
hash a thread of its own instead.)

On a read error the stages first finish every buffer already received, so the partial file
holds exactly the bytes before the failure (resumable); then the error propagates. A write
error surfaces as :class:`WriteFailed`, distinct from read-side ``OSError``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from omnihub._durable import deferred

__all__ = ["BUFFERS", "CHUNK_SIZE", "FLUSH_STEP", "Flusher", "WriteFailed", "pump"]

#: Bytes per buffer: large enough that per-chunk overhead is small, small enough that a
#: buffer is still in the CPU cache when the hashing and writing threads read it. (1 MiB
#: buffers measured the same within noise on the benchmark machine.)
CHUNK_SIZE = 256 << 10
#: Buffers in flight between the receiving and the writing thread.
BUFFERS = 32
#: False (the default): one thread writes each buffer and then hashes it while it is still
#: in that core's cache, beside the receiving thread -- two busy threads for two cores.
#: True: hashing and writing get a thread each (three busy threads). Measured on the
#: benchmark machine (2 cores, loopback nginx, 1 GiB): two threads use ~18% less CPU and
#: are faster (~830 vs ~770 MiB/s).
SEPARATE_HASH_THREAD = False
#: Bytes written between two background ``fdatasync`` calls (see :class:`Flusher`).
FLUSH_STEP = 64 << 20


class WriteFailed(Exception):
    """Writing to the local file failed; ``error`` is the underlying :class:`OSError`."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _write_all(write: Callable[[Any], int | None], view: memoryview) -> None:
    while view:
        written = write(view)
        if written is None or written >= len(view):
            return
        view = view[written:]


class _Stage(threading.Thread):
    """One consumer of the received buffers (hashing, or writing), in order."""

    def __init__(
        self, name: str, work: Callable[[memoryview], object], done: Callable[[Any], None]
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.done = done
        self.queue: queue.SimpleQueue[tuple[Any, int, int] | None] = queue.SimpleQueue()
        self.error: OSError | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            buf, start, n = item
            if self.error is None:
                view = memoryview(buf)[start : start + n]
                try:
                    self.work(view)
                except OSError as exc:
                    self.error = exc
                finally:
                    view.release()
            self.done(buf)


class _Pipeline:
    """Free buffers, and the stages (writing, hashing) that each see every full buffer.

    A buffer comes back to ``free`` as ``(buffer, held_by_writer)``: whether the writing
    stage was the last to let go of it (the receiver's stall detection).
    """

    def __init__(
        self,
        write: Callable[[Any], int | None],
        hasher: Any,
        buffers: list[Any],
        *,
        separate_hash: bool,
    ) -> None:
        self.free: queue.SimpleQueue[tuple[Any, bool]] = queue.SimpleQueue()
        self._pending: dict[int, int] = {}
        self._lock = threading.Lock()

        def write_all(view: memoryview) -> None:
            _write_all(write, view)

        def written(buf: Any) -> None:
            self._release(buf, writer=True)

        def hashed(buf: Any) -> None:
            self._release(buf, writer=False)

        if separate_hash:
            self.stages = [
                _Stage("omnihub-hash", hasher.update, hashed),
                _Stage("omnihub-write", write_all, written),
            ]
        else:

            def write_then_hash(view: memoryview) -> None:
                write_all(view)
                hasher.update(view)

            self.stages = [_Stage("omnihub-write", write_then_hash, written)]
        for buf in buffers:
            self.free.put((buf, False))
        for stage in self.stages:
            stage.start()

    def _release(self, buf: Any, *, writer: bool) -> None:
        with self._lock:
            left = self._pending[id(buf)] - 1
            if left:
                self._pending[id(buf)] = left
                return
            del self._pending[id(buf)]
        self.free.put((buf, writer))

    def submit(self, buf: Any, start: int, n: int) -> None:
        with self._lock:
            self._pending[id(buf)] = len(self.stages)
        for stage in self.stages:
            stage.queue.put((buf, start, n))

    @property
    def error(self) -> OSError | None:
        for stage in self.stages:
            if stage.error is not None:
                return stage.error
        return None

    def close(self) -> None:
        for stage in self.stages:
            stage.queue.put(None)
        for stage in self.stages:
            stage.join()


def pump(
    readinto: Callable[[memoryview], int | None],
    write: Callable[[Any], int | None],
    hasher: Any,
    *,
    progress: Callable[[int], object] | None = None,
    chunk_size: int = CHUNK_SIZE,
    buffers: int = BUFFERS,
    stop: Callable[[int], bool] | None = None,
    separate_hash: bool | None = None,
    allocate: Callable[[int], Any] = bytearray,
    skew: int = 0,
    on_write_stall: Callable[[float], object] | None = None,
    read_size: int | None = None,
) -> int:
    """Move everything ``readinto`` yields to ``write``, updating ``hasher``; return the bytes.

    ``readinto(view)`` returns how many bytes it put into ``view`` (0 at the end);
    ``write(view)`` may write less than asked (it is called again for the rest).
    ``stop(total)``, asked after every read, ends the copy early when it returns True
    (everything read so far is written and hashed; the source is left where it is).
    ``read_size`` caps what one ``readinto`` is asked for (default: a whole buffer). It
    matters for sources that fill the view before they return, as http.client's does: on a
    slow link a large buffer would delay ``stop`` and progress by seconds.

    The rest serves writers with constraints (:mod:`omnihub._direct`): ``allocate(size)``
    makes each buffer (``bytearray``; an anonymous ``mmap`` is page-aligned),
    ``separate_hash`` gives the hash its own thread (default :data:`SEPARATE_HASH_THREAD`;
    right when writing costs no CPU), the first buffer is filled from byte ``skew`` on
    (so that a buffer's memory and the file share an alignment), and
    ``on_write_stall(seconds)`` is called whenever the receiver had to wait for a buffer and
    the writing stage, not the hashing stage, was the last to give it back.
    """
    separate = SEPARATE_HASH_THREAD if separate_hash is None else separate_hash
    pipeline = _Pipeline(
        write, hasher, [allocate(chunk_size) for _ in range(buffers)], separate_hash=separate
    )
    total = 0
    start = skew % chunk_size
    step = chunk_size if read_size is None else max(read_size, 1)
    try:
        done = False
        while not done:
            if on_write_stall is not None and pipeline.free.empty():
                waiting = time.monotonic()
                buf, held_by_writer = pipeline.free.get()
                if held_by_writer:
                    on_write_stall(time.monotonic() - waiting)
            else:
                buf, _ = pipeline.free.get()
            if pipeline.error is not None:
                raise WriteFailed(pipeline.error)
            view = memoryview(buf)
            filled = start
            try:
                while filled < chunk_size:
                    n = readinto(view[filled : filled + step])
                    if not n:
                        done = True
                        break
                    filled += n
                    if stop is not None and stop(total + filled - start):
                        done = True  # the buffer so far is written and hashed below
                        break
            finally:
                view.release()
                if filled > start:
                    pipeline.submit(buf, start, filled - start)
                    total += filled - start
                    if progress is not None:
                        progress(filled - start)
                else:
                    pipeline.free.put((buf, False))
            start = 0
    finally:
        pipeline.close()
    if pipeline.error is not None:
        raise WriteFailed(pipeline.error)
    return total


class Flusher:
    """Write to ``fd`` and start writeback in the background every ``step`` bytes.

    Where the durability rule is "fsync before the file is published" (no boot id; see
    :mod:`omnihub._durable`), flushing as the download goes means the final :meth:`finish` has
    only the tail left to sync instead of the whole file, and the disk works while the network
    does. Where the file is published first and synced after, the flusher only writes. A
    background error is re-raised by :meth:`finish` (a failed writeback is only reported once
    by the kernel).
    """

    def __init__(self, fd: int, step: int = FLUSH_STEP) -> None:
        import os

        self._os = os
        self.fd = fd
        self.step = step
        self._since = 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None
        # Published before its fsync (omnihub._durable), a download needs no flushing here.
        self._background = hasattr(os, "fdatasync") and not deferred()

    def write(self, data: Any) -> int:
        n = self._os.write(self.fd, data)
        self._since += n
        if self._since >= self.step:
            self.kick()
        return n

    def kick(self) -> None:
        """Start a background ``fdatasync`` now unless one is running (writes by others)."""
        if self._background and not self._busy():
            self._since = 0
            self._thread = threading.Thread(target=self._sync, name="omnihub-flush", daemon=True)
            self._thread.start()

    def _busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _sync(self) -> None:
        try:
            self._os.fdatasync(self.fd)
        except OSError as exc:
            self._error = exc

    def close(self) -> None:
        """Wait for a background flush (call before closing ``fd``)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def finish(self) -> None:
        """Wait for the background flush, then fsync everything; raise any write-back error.

        Where :func:`omnihub._durable.deferred`, the file is fsynced after it is published
        instead (by :func:`omnihub._durable.settle`), so nothing is synced here.
        """
        self.close()
        if self._error is not None:
            raise self._error
        if not deferred():
            self._os.fsync(self.fd)
