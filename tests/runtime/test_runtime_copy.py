"""The one single-stream writer (omnihub.download._copy): what is written is what was read
and what was hashed, whatever the chunking; large copies hand each written window to the
kernel's writeback (real files, a real descriptor; only the kernel advice is observed)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.download import _copy


def _reader(data: bytes, pieces: list[int]) -> tuple[list[int], Callable[[int], bytes]]:
    """A source returning ``data`` in the sizes ``pieces`` (cycled), never more than asked;
    the sizes asked are recorded."""
    asked: list[int] = []
    position = [0, 0]

    def read(size: int) -> bytes:
        asked.append(size)
        start, turn = position
        n = min(size, pieces[turn % len(pieces)])
        position[:] = [start + n, turn + 1]
        return data[start : start + n]

    return asked, read


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(0, 1 << 20),
    pieces=st.lists(st.integers(1, 256 << 10), min_size=1, max_size=5).map(
        lambda p: [*p, 64 << 10]
    ),
    bounds=st.tuples(st.none() | st.integers(1, 3 << 19), st.booleans()),
)
def test_written_equals_read_equals_hashed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    pieces: list[int],
    bounds: tuple[int | None, bool],
) -> None:
    """``bounds``: the copy's limit, and whether it hashes on the second thread."""
    limit, threaded = bounds
    monkeypatch.setattr(_copy, "THREAD_MIN", 0 if threaded else 1 << 62)
    data = os.urandom(size)
    asked, read = _reader(data, pieces)
    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    hasher = hashlib.sha256()
    try:
        moved = _copy.copy(read, fd, hasher, size=_copy.chunk_size(size), limit=limit)
    finally:
        os.close(fd)
    expected = data if limit is None else data[:limit]
    assert moved == len(expected)
    assert target.read_bytes() == expected
    assert hasher.hexdigest() == hashlib.sha256(expected).hexdigest()
    assert all(0 < n <= _copy.CHUNK for n in asked)  # bounded reads, whatever the file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writeback advice is Linux-only")
@pytest.mark.parametrize("offset", [0, 3 << 20])
def test_each_written_window_is_handed_to_writeback_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: int
) -> None:
    """Windows of WRITEBACK_WINDOW bytes, contiguous from where the copy started (a resumed
    copy appends), each advised once right after it is written; the tail is left to fsync."""
    window = _copy.WRITEBACK_WINDOW
    data = os.urandom(3 * window + 12345)
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, start: int, length: int, advice: int) -> None:
        advised.append((start, length, os.fstat(fd).st_size))
        real(fd, start, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    target = tmp_path / "model.bin"
    target.write_bytes(b"\0" * offset)  # what a resumed download already has
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        _copy.copy(_reader(data, [1 << 20])[1], fd, hashlib.sha256())
    finally:
        os.close(fd)
    assert [(s, n) for s, n, _ in advised] == [(offset + i * window, window) for i in range(3)]
    assert all(s + n <= written for s, n, written in advised)  # only bytes already written
    assert target.read_bytes() == b"\0" * offset + data
