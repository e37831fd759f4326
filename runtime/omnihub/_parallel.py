"""Parallel ranged downloads: N connections, each filling its own segment of one file.

Used for large files from servers that accept byte ranges (per-connection rate limits make
one stream slow). The partial file is allocated at its full size and every segment is
written at its offset with ``pwrite``. sha256 stays exact: a hashing thread follows the
contiguous prefix of finished bytes, reading them back (from the page cache) in file order.
Resumable: the per-segment progress is saved beside the partial (``<file>.incomplete.json``)
every half second and on failure, and the next attempt -- or the next process -- asks only
for the missing part of each segment, with ``If-Range`` so a changed file starts over.

This module knows nothing of HTTP libraries: the caller passes ``open_range(start, end)``
returning an object with ``readinto(view)`` and ``close()`` positioned at ``start``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

import attrs

__all__ = ["Body", "ParallelFailed", "Segment", "plan", "run"]

_BUFFER = 256 << 10
_SAVE_EVERY = 0.5


class Body(Protocol):
    """A response body positioned at the first byte of a segment."""

    def readinto(self, view: memoryview) -> int | None: ...

    def close(self) -> None: ...


@attrs.define
class Segment:
    """Bytes ``[start, end)`` of the file, ``done`` of which are already written."""

    start: int
    end: int
    done: int = 0

    @property
    def position(self) -> int:
        return self.start + self.done

    @property
    def complete(self) -> bool:
        return self.position >= self.end


class ParallelFailed(Exception):
    """A segment failed; ``kind`` is "network" (resume later), "write" (disk) or "fatal".

    ``cause`` is the first underlying exception.
    """

    def __init__(self, kind: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.kind = kind
        self.cause = cause


def plan(total: int, connections: int) -> list[Segment]:
    """Split ``[0, total)`` into ``connections`` nearly equal segments."""
    n = max(1, min(connections, total))
    size = -(-total // n)
    return [Segment(i, min(i + size, total)) for i in range(0, total, size)]


class _Run:
    def __init__(
        self,
        *,
        fd: int,
        segments: list[Segment],
        total: int,
        open_range: Callable[[int, int], Body],
        classify: Callable[[BaseException], str],
        progress: Callable[[int], object],
        save: Callable[[list[Segment]], None],
    ) -> None:
        self.fd = fd
        self.segments = segments
        self.total = total
        self.open_range = open_range
        self.classify = classify
        self.progress = progress
        self.save = save
        self.abort = threading.Event()
        self.changed = threading.Condition()
        self.failures: list[ParallelFailed] = []
        self.bodies: list[Body] = []
        self.lock = threading.Lock()
        self.hasher: Any = hashlib.sha256()
        self.hashed = 0

    def fail(self, failure: ParallelFailed) -> None:
        with self.lock:
            self.failures.append(failure)
            bodies = list(self.bodies)
        self.abort.set()
        for body in bodies:  # unblock readers stuck in recv
            with contextlib.suppress(Exception):  # closing is best effort
                body.close()
        with self.changed:
            self.changed.notify_all()

    def segment(self, seg: Segment, first: Body | None) -> None:
        body = first
        try:
            if body is None:
                body = self.open_range(seg.position, seg.end - 1)
            with self.lock:
                self.bodies.append(body)
            if self.abort.is_set():
                return
            buf = bytearray(_BUFFER)
            view = memoryview(buf)
            while not seg.complete and not self.abort.is_set():
                want = min(_BUFFER, seg.end - seg.position)
                n = body.readinto(view[:want])
                if not n:
                    raise ConnectionError(f"connection closed at byte {seg.position} of {seg.end}")
                try:
                    written = os.pwrite(self.fd, view[:n], seg.position)
                    while written < n:
                        written += os.pwrite(self.fd, view[written:n], seg.position + written)
                except OSError as exc:
                    self.fail(ParallelFailed("write", exc))
                    return
                seg.done += n
                self.progress(n)
                with self.changed:
                    self.changed.notify_all()
        except BaseException as exc:
            if not self.abort.is_set():
                self.fail(ParallelFailed(self.classify(exc), exc))
        finally:
            if body is not None:
                with contextlib.suppress(Exception):
                    body.close()

    def contiguous(self) -> int:
        for seg in self.segments:
            if not seg.complete:
                return seg.position
        return self.total

    def hash_prefix(self) -> None:
        block = 1 << 20
        while self.hashed < self.total:
            limit = self.contiguous()
            if self.hashed >= limit:
                with self.changed:
                    if self.abort.is_set():
                        return
                    self.changed.wait(0.1)
                continue
            data = os.pread(self.fd, min(block, limit - self.hashed), self.hashed)
            if not data:
                self.fail(ParallelFailed("write", OSError(f"short read at byte {self.hashed}")))
                return
            self.hasher.update(data)
            self.hashed += len(data)


def run(
    fd: int,
    segments: list[Segment],
    total: int,
    *,
    open_range: Callable[[int, int], Body],
    classify: Callable[[BaseException], str],
    first: Body | None = None,
    progress: Callable[[int], object] = lambda n: None,
    save: Callable[[list[Segment]], None] = lambda s: None,
    hasher: Any = None,
    hashed: int = 0,
) -> Any:
    """Fill every segment of ``fd`` and return the sha256 hasher of the whole file.

    ``first``, if given, is a body already positioned at ``segments[0].position`` (the
    response that revealed the size). ``classify(exc)`` maps a reader's exception to
    "network" or "fatal". ``hasher``, if given, already holds the first ``hashed`` bytes.
    Raises :class:`ParallelFailed` after saving the progress.
    """
    state = _Run(
        fd=fd,
        segments=segments,
        total=total,
        open_range=open_range,
        classify=classify,
        progress=progress,
        save=save,
    )
    if hasher is not None:
        state.hasher, state.hashed = hasher, hashed
    threads = []
    for i, seg in enumerate(segments):
        if seg.complete:
            continue
        body = first if i == 0 else None
        thread = threading.Thread(
            target=state.segment, args=(seg, body), name=f"omnihub-segment-{i}", daemon=True
        )
        thread.start()
        threads.append(thread)
    if first is not None and segments[0].complete:
        first.close()
    hasher_thread = threading.Thread(target=state.hash_prefix, name="omnihub-hash", daemon=True)
    hasher_thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(_SAVE_EVERY)
            save(segments)
    save(segments)
    with state.changed:
        state.changed.notify_all()
    hasher_thread.join()
    if state.failures:
        raise state.failures[0]
    return state.hasher
