"""The receive/hash/write pump: exact bytes and hash whatever the chunking; clean failures."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import omnihub._stream as stream
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub._stream import Flusher, WriteFailed, pump
from omnihub.progress import progress_bar


class _Source:
    """A reader that hands out data in the given piece sizes (then the rest), like a socket."""

    def __init__(self, data: bytes, pieces: list[int], fail_after: int | None = None) -> None:
        self.data = data
        self.pos = 0
        self.pieces = list(pieces)
        self.fail_after = fail_after

    def readinto(self, view: memoryview) -> int:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise ConnectionResetError(errno.ECONNRESET, "reset by peer")
        want = self.pieces.pop(0) if self.pieces else len(view)
        n = min(want, len(view), len(self.data) - self.pos)
        if self.fail_after is not None:
            n = min(n, self.fail_after - self.pos) or n
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class _ShortWriter(io.BytesIO):
    """Writes at most ``limit`` bytes per call, as a raw file may."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: object) -> int:
        view = memoryview(data)  # type: ignore[arg-type]
        return super().write(view[: self.limit])


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=5000),
    st.lists(st.integers(min_value=1, max_value=700), max_size=20),
    st.tuples(
        st.integers(min_value=1, max_value=1024),  # chunk size
        st.integers(min_value=1, max_value=4),  # buffers
        st.integers(min_value=1, max_value=900),  # most bytes one write() takes
    ),
    st.booleans(),
)
def test_pump_copies_and_hashes_exactly(
    data: bytes, pieces: list[int], sizes: tuple[int, int, int], separate: bool
) -> None:
    chunk, buffers, write_limit = sizes
    sink = _ShortWriter(write_limit)
    hasher = hashlib.sha256()
    progressed: list[int] = []
    saved, stream.SEPARATE_HASH_THREAD = stream.SEPARATE_HASH_THREAD, separate
    try:
        total = pump(
            _Source(data, pieces).readinto,
            sink.write,
            hasher,
            progress=progressed.append,
            chunk_size=chunk,
            buffers=buffers,
        )
    finally:
        stream.SEPARATE_HASH_THREAD = saved
    assert total == len(data)
    assert sink.getvalue() == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sum(progressed) == len(data)


@pytest.fixture(params=[False, True], ids=["write-then-hash", "separate-hash-thread"])
def threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with both pipeline layouts (see ``SEPARATE_HASH_THREAD``)."""
    monkeypatch.setattr(stream, "SEPARATE_HASH_THREAD", request.param)


@pytest.mark.usefixtures("threads")
def test_read_error_keeps_every_byte_received_before_it() -> None:
    data = bytes(range(256)) * 40
    sink = io.BytesIO()
    with pytest.raises(ConnectionResetError):
        pump(
            _Source(data, [100] * 100, fail_after=3000).readinto,
            sink.write,
            hashlib.sha256(),
            chunk_size=512,
        )
    assert sink.getvalue() == data[:3000]  # exactly the prefix: resumable


@pytest.mark.usefixtures("threads")
def test_write_error_is_reported_as_write_failed() -> None:
    def full_disk(_: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteFailed) as info:
        pump(_Source(b"x" * 10_000, []).readinto, full_disk, hashlib.sha256(), chunk_size=1000)
    assert info.value.error.errno == errno.ENOSPC


def test_progress_is_silent_off_a_terminal() -> None:
    bar = progress_bar(1 << 30, 0, "m", disabled=False)  # pytest captures stderr: not a tty
    assert type(bar).__name__ == "_Silent"
    assert type(progress_bar(1 << 30, 0, "m", disabled=True)).__name__ == "_Silent"


def test_flusher_writes_everything_and_syncs(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    target = tmp_path / "f"
    with target.open("wb", buffering=0) as fh:
        flusher = Flusher(fh.fileno(), step=10_000)
        total = pump(_Source(data, []).readinto, flusher.write, hashlib.sha256(), chunk_size=4096)
        flusher.finish()
    assert total == len(data)
    assert target.read_bytes() == data


def test_flusher_reports_a_background_writeback_error(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    flusher = Flusher(fd, step=1)
    flusher.write(b"abc")  # starts a background fdatasync
    flusher.close()
    flusher._error = OSError(errno.EIO, "Input/output error")  # what a failed writeback leaves
    with pytest.raises(OSError, match="Input/output error"):
        flusher.finish()
    os.close(fd)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20),
    st.integers(min_value=1, max_value=5000),
)
def test_stop_is_asked_after_every_read_and_keeps_exactly_what_was_read(
    pieces: list[int], threshold: int
) -> None:
    data = bytes(range(256)) * 20
    source = _Source(data, pieces)
    sink = io.BytesIO()
    hasher = hashlib.sha256()
    asked: list[int] = []

    def stop(total: int) -> bool:
        asked.append(total)
        return total >= threshold

    total = pump(source.readinto, sink.write, hasher, chunk_size=4096, buffers=2, stop=stop)
    assert total == source.pos  # the source is left right after the last byte taken
    assert sink.getvalue() == data[:total]
    assert hasher.hexdigest() == hashlib.sha256(data[:total]).hexdigest()
    assert asked == sorted(set(asked))  # once per read, growing
    assert total >= min(threshold, len(data))
    assert all(t < threshold for t in asked[:-1])


def test_read_size_caps_every_read() -> None:
    asked: list[int] = []
    data = bytes(range(256)) * 100

    class Filling:
        """Fills whatever it is given before returning, as http.client's readinto does."""

        pos = 0

        def readinto(self, view: memoryview) -> int:
            asked.append(len(view))
            n = min(len(view), len(data) - self.pos)
            view[:n] = data[self.pos : self.pos + n]
            self.pos += n
            return n

    sink = io.BytesIO()
    total = pump(Filling().readinto, sink.write, hashlib.sha256(), chunk_size=8192, read_size=1000)
    assert total == len(data)
    assert sink.getvalue() == data
    assert max(asked) == 1000
