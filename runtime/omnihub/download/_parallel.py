"""Parallel ranged downloads: N connections, each ``pwrite``-ing its segment of one file.

Used when one stream stays slow after a sustained window (:class:`Switch`), or when asked
(``OMNIHUB_CONNECTIONS``). A hashing thread follows the contiguous prefix of written bytes
in order, so sha256 stays exact; progress is saved twice a second, so a later attempt asks
only for what each segment misses. :func:`run` knows nothing of HTTP (``open_range``) and
joins every thread it starts before it returns or raises, KeyboardInterrupt included.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

__all__ = ["PARALLEL_BELOW", "WINDOW_SECONDS", "Body", "Segment", "SegmentFailed", "Switch"]

#: A single stream gets this long to show its speed before parallel connections are tried.
WINDOW_SECONDS = 2.0
#: Below this rate (bytes/s) over the window, the rest of the file is fetched in parallel.
PARALLEL_BELOW = 32 << 20
_BUFFER = 256 << 10
_SAVE_EVERY = 0.5


class Body(Protocol):
    """A response body positioned at the first missing byte of a segment."""

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


class SegmentFailed(Exception):
    """A segment failed; ``cause`` is the first exception (the others were stopped) and
    ``writing`` tells a local disk error from a network one."""

    def __init__(self, cause: BaseException, *, writing: bool = False) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.writing = writing


class Switch:
    """Asked after every chunk of a single stream: go parallel now? At once when the user
    asked for connections, else when after :data:`WINDOW_SECONDS` it is below
    :data:`PARALLEL_BELOW`."""

    def __init__(self, *, asked: bool) -> None:
        self.asked = asked
        self.started = time.monotonic()
        self.switched = False

    def __call__(self, moved: int) -> bool:
        if not self.switched:
            elapsed = time.monotonic() - self.started
            slow = elapsed >= WINDOW_SECONDS and moved < PARALLEL_BELOW * elapsed
            self.switched = self.asked or slow
        return self.switched


def plan(total: int, connections: int) -> list[Segment]:
    """Split ``[0, total)`` into ``connections`` nearly equal segments."""
    n = max(1, min(connections, total))
    size = -(-total // n)
    return [Segment(i, min(i + size, total)) for i in range(0, total, size)]


def split_rest(position: int, total: int, connections: int) -> list[Segment]:
    """Segments for a stream at ``position``: it keeps the first share of the rest."""
    rest = plan(total - position, connections)
    first = Segment(0, position + rest[0].end, position)
    return [first, *(Segment(position + s.start, position + s.end) for s in rest[1:])]


class _Run:
    """The shared state of one parallel transfer."""

    def __init__(self, fd: int, segments: list[Segment], total: int) -> None:
        self.fd = fd
        self.segments = segments
        self.total = total
        self.stop = threading.Event()
        self.changed = threading.Condition()
        self.lock = threading.Lock()
        self.failures: list[SegmentFailed] = []
        self.bodies: list[Body] = []
        self.hasher: Any = hashlib.sha256()
        self.hashed = 0

    def fail(self, exc: BaseException, *, writing: bool = False) -> None:
        with self.lock:
            self.failures.append(SegmentFailed(exc, writing=writing))
        self.halt()

    def halt(self) -> None:
        """Stop every thread: readers blocked in ``recv`` are woken by closing their body."""
        self.stop.set()
        with self.lock:
            bodies = list(self.bodies)
        for body in bodies:
            with contextlib.suppress(Exception):
                body.close()
        with self.changed:
            self.changed.notify_all()

    def segment(
        self,
        seg: Segment,
        open_range: Callable[[int, int], Body],
        progress: Callable[[int], object],
    ) -> None:
        body = None
        try:
            body = open_range(seg.position, seg.end - 1)
            with self.lock:
                self.bodies.append(body)
            buf = bytearray(min(_BUFFER, seg.end - seg.position))
            view = memoryview(buf)
            while not seg.complete and not self.stop.is_set():
                n = body.readinto(view[: min(len(buf), seg.end - seg.position)])
                if not n:
                    raise ConnectionError(f"connection closed at byte {seg.position} of {seg.end}")
                if self.stop.is_set():
                    return
                try:
                    written = 0
                    while written < n:
                        written += os.pwrite(self.fd, view[written:n], seg.position + written)
                except OSError as exc:
                    self.fail(exc, writing=True)
                    return
                seg.done += n
                progress(n)
                with self.changed:
                    self.changed.notify_all()
        except BaseException as exc:
            if not self.stop.is_set():
                self.fail(exc)
        finally:
            if body is not None:
                with contextlib.suppress(Exception):
                    body.close()

    def contiguous(self) -> int:
        return next((seg.position for seg in self.segments if not seg.complete), self.total)

    def hash_prefix(self) -> None:
        try:
            while self.hashed < self.total and not self.stop.is_set():
                limit = self.contiguous()
                if self.hashed >= limit:
                    with self.changed:
                        self.changed.wait(0.1)
                    continue
                data = os.pread(self.fd, min(1 << 20, limit - self.hashed), self.hashed)
                if not data:
                    raise OSError(f"short read at byte {self.hashed}")
                self.hasher.update(data)
                self.hashed += len(data)
        except BaseException as exc:
            self.fail(exc, writing=isinstance(exc, OSError))


def run(
    fd: int,
    segments: list[Segment],
    total: int,
    *,
    open_range: Callable[[int, int], Body],
    progress: Callable[[int], object] = lambda n: None,
    save: Callable[[list[Segment]], None] = lambda s: None,
) -> Any:
    """Fill every segment of ``fd``; return the sha256 hasher of the whole file (the bytes
    already done are read back in order). Raises :class:`SegmentFailed` (after saving the
    progress) when a segment fails."""
    state = _Run(fd, segments, total)
    threads = [threading.Thread(target=state.hash_prefix, name="omnihub-hash", daemon=True)]
    threads += [
        threading.Thread(
            target=state.segment,
            args=(seg, open_range, progress),
            name=f"omnihub-segment-{i}",
            daemon=True,
        )
        for i, seg in enumerate(segments)
        if not seg.complete
    ]
    try:
        save(segments)
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            while thread.is_alive():
                thread.join(_SAVE_EVERY)
                save(segments)
        with state.changed:
            state.changed.notify_all()
        threads[0].join()
    finally:
        if any(thread.is_alive() for thread in threads):
            state.halt()  # the caller's thread was interrupted: stop the others first
        for thread in threads:
            if thread.ident is not None:
                thread.join()
        save(segments)
    if state.failures:
        raise state.failures[0]
    if state.hashed != total:
        raise SegmentFailed(ConnectionError(f"hashed {state.hashed} of {total} bytes"))
    return state.hasher
