"""Direct writes of large single streams (omnihub._direct) on the real filesystem.

Whether a byte went to the disk directly or through the page cache is observed with a
``RWF_NOWAIT`` read, which fails with EAGAIN for a page that is not cached: a direct write
leaves nothing in the cache, a plain one leaves the page there.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import mmap
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import omnihub._direct
import omnihub.download
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub._direct import ALIGN, DirectWriter, direct_body, open_direct
from omnihub._stream import pump
from omnihub.hub import fetch

from tests.runtime.fault_server import Fault
from tests.runtime.helpers import Env, entry, entry_json, fetch_under_file_size_limit, payload

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "O_DIRECT"), reason="Linux O_DIRECT"
)


def _direct_fds(path: Path) -> Iterator[tuple[int, int, int]]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fds = open_direct(fd)
    if fds is None:
        os.close(fd)
        pytest.skip(f"the filesystem of {path} refuses O_DIRECT")
    try:
        yield fd, *fds
    finally:
        for each in (fd, *fds):
            os.close(each)


@pytest.fixture
def fds(tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    """(read-write, plain, direct) descriptors of one fresh file under tmp_path."""
    yield from _direct_fds(tmp_path / "out.bin")


def _cached(fd: int, position: int) -> bool:
    """Whether the page holding ``position`` is in the page cache (without reading the disk)."""
    try:
        os.preadv(fd, [bytearray(1)], position, os.RWF_NOWAIT)
    except BlockingIOError:
        return False
    return True


def _aligned(data: bytes, skew: int = 0) -> memoryview:
    """``data`` in page-aligned memory, starting ``skew`` bytes into the mapping."""
    buf = mmap.mmap(-1, skew + len(data))
    buf[skew:] = data
    return memoryview(buf)[skew:]


def test_aligned_middle_goes_direct_and_the_unaligned_ends_through_the_cache(
    fds: tuple[int, int, int],
) -> None:
    fd, plain, direct = fds
    start = ALIGN + 100  # an unaligned resume point
    data = payload(5 * ALIGN)
    writer = DirectWriter(plain, direct, start)
    assert writer(_aligned(data, skew=start % ALIGN)) == len(data)
    end = start + len(data)
    assert writer.direct
    assert writer.position == end
    assert _cached(fd, start)  # head page: written plainly
    assert _cached(fd, end - 1)  # tail page: written plainly
    middle = range(2 * ALIGN, end // ALIGN * ALIGN, ALIGN)
    assert [p for p in middle if _cached(fd, p)] == []
    assert os.pread(fd, len(data), start) == data  # (this read fills the cache)


def test_a_refused_direct_write_is_redone_through_the_cache(fds: tuple[int, int, int]) -> None:
    fd, plain, direct = fds
    data = payload(4 * ALIGN, seed=3)
    unaligned_memory = memoryview(bytearray(b"\0" + data))[1:]  # the kernel answers EINVAL
    writer = DirectWriter(plain, direct, 0)
    writer(unaligned_memory)
    assert os.pread(fd, len(data), 0) == data
    assert not writer.direct
    assert "refused a direct write at byte 0" in writer.reason
    more = payload(2 * ALIGN, seed=4)
    writer(_aligned(more))  # aligned, but direct writes stay off
    assert os.pread(fd, len(more), len(data)) == more
    assert _cached(fd, len(data))


def test_other_write_errors_propagate(fds: tuple[int, int, int]) -> None:
    _, plain, _ = fds
    writer = DirectWriter(plain, -1, 0)  # not a descriptor: EBADF, not a fallback
    with pytest.raises(OSError, match="Bad file descriptor") as caught:
        writer(_aligned(payload(ALIGN)))
    assert caught.value.errno == errno.EBADF
    assert writer.direct


def test_a_disk_slow_for_a_moment_keeps_direct_writes(fds: tuple[int, int, int]) -> None:
    _, plain, direct = fds
    writer = DirectWriter(plain, direct, 0)
    for _ in range(9):
        writer.congested(omnihub._direct.STALL_SECONDS / 10)
    assert writer.direct


def test_a_disk_holding_the_transfer_back_turns_direct_writes_off(
    fds: tuple[int, int, int],
) -> None:
    fd, plain, direct = fds
    writer = DirectWriter(plain, direct, 0)
    writer.congested(omnihub._direct.STALL_SECONDS / 2)
    assert writer.direct
    writer.congested(omnihub._direct.STALL_SECONDS / 2)
    assert not writer.direct
    assert writer.reason.startswith("the disk is slower than the network (1.0 s of 0.0 s")
    writer(_aligned(payload(2 * ALIGN)))
    assert _cached(fd, 0)


class _Pieces:
    """A ``readinto`` source handing out ``data`` in the given piece sizes (cycled)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = data
        self.sizes = sizes
        self.at = 0
        self.calls = 0

    def readinto(self, view: memoryview) -> int:
        size = self.sizes[self.calls % len(self.sizes)]
        self.calls += 1
        n = min(size, len(view), len(self.data) - self.at)
        view[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offset=st.integers(0, 3 * ALIGN),
    size=st.integers(0, 9 * ALIGN),
    pieces=st.lists(st.integers(1, 3 * ALIGN), min_size=1, max_size=5),
)
def test_any_offset_and_piece_sizes_give_the_exact_file_and_digest(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offset: int,
    size: int,
    pieces: list[int],
) -> None:
    monkeypatch.setattr(omnihub._direct, "CHUNK", 2 * ALIGN)
    monkeypatch.setattr(omnihub._direct, "BUFFERS", 3)
    path = tmp_path / f"p-{offset}-{size}.bin"
    before = payload(offset, seed=1)
    path.write_bytes(before)
    data = payload(size, seed=2)
    hasher = hashlib.sha256()
    for fd, _, _ in _direct_fds(path):
        assert direct_body(_Pieces(data, pieces).readinto, fd, offset=offset, hasher=hasher) == size
    assert path.read_bytes() == before + data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    path.unlink()


def test_the_receiver_reports_stalls_only_when_the_writer_holds_it_back() -> None:
    def run(write_delay: float, hash_delay: float) -> float:
        stalls: list[float] = []

        def write(view: memoryview) -> int:
            time.sleep(write_delay)
            return len(view)

        class Hasher:
            def update(self, view: memoryview) -> None:
                time.sleep(hash_delay)

        source = _Pieces(payload(64 * 1024), [1024])
        total = pump(
            source.readinto,
            write,
            Hasher(),
            chunk_size=1024,
            buffers=2,
            separate_hash=True,
            on_write_stall=stalls.append,
        )
        assert total == 64 * 1024
        return sum(stalls)

    # 64 buffers, each held 5 ms by the writer: most of that is waited for
    assert run(write_delay=0.005, hash_delay=0.0) >= 0.1
    assert run(write_delay=0.0, hash_delay=0.005) == 0


def test_skew_starts_the_first_buffer_inside_it() -> None:
    seen: list[tuple[int, int]] = []
    buffers: list[mmap.mmap] = []

    def allocate(size: int) -> mmap.mmap:
        buffers.append(mmap.mmap(-1, size))
        return buffers[-1]

    def write(view: memoryview) -> int:
        seen.append((len(view), len(bytes(view))))
        return len(view)

    data = payload(3 * ALIGN)
    pump(
        _Pieces(data, [ALIGN]).readinto,
        write,
        hashlib.sha256(),
        chunk_size=ALIGN,
        buffers=2,
        allocate=allocate,
        skew=100,
    )
    assert [n for n, _ in seen] == [ALIGN - 100, ALIGN, ALIGN, 100]


def _watch(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = omnihub._direct.direct_body

    def watched(*args: Any, **kwargs: Any) -> int | None:
        count = real(*args, **kwargs)
        calls.append(-1 if count is None else count)
        return count

    monkeypatch.setattr(omnihub._direct, "direct_body", watched)
    monkeypatch.setattr(omnihub._direct, "MIN_SIZE", 1 << 20)
    return calls


@pytest.mark.parametrize("enabled", [True, False])
def test_fetch_writes_large_files_directly_unless_turned_off(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, enabled: bool
) -> None:
    calls = _watch(monkeypatch)
    if not enabled:
        monkeypatch.setenv("OMNIHUB_DIRECT_IO", "0")
    data = payload(3_000_000, seed=5)
    env.publish("model.fb", data)
    with caplog.at_level(logging.DEBUG, logger="omnihub"):
        assert fetch(entry(data=data)).read_bytes() == data
    assert calls == ([len(data)] if enabled else [])
    said = [r.getMessage() for r in caplog.records if "waiting for the disk" in r.getMessage()]
    assert len(said) == (1 if enabled else 0)
    assert all(m.startswith(f"{len(data)} bytes in ") for m in said)
    assert all(m.endswith("direct writes on to the end") for m in said)


def test_fetch_keeps_small_files_in_the_page_cache(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _watch(monkeypatch)
    data = payload(500_000, seed=6)
    env.publish("model.fb", data)
    assert fetch(entry(data=data)).read_bytes() == data
    assert calls == []


def test_a_truncated_direct_transfer_resumes_at_an_unaligned_byte(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _watch(monkeypatch)
    monkeypatch.setattr(omnihub._direct, "MIN_SIZE", 100_000)
    data = payload(3_000_000, seed=7)
    where = env.publish("model.fb", data)
    cut = 1_000_003
    env.server.fault(where, Fault.truncate(cut))
    assert fetch(entry(data=data)).read_bytes() == data
    second = env.server.requests_for(where)[1]
    assert second.status == 206
    assert second.range_start == cut
    assert calls == [cut, len(data) - cut]


def test_a_disk_refusing_direct_writes_ends_as_a_write_error(env: Env) -> None:
    data = payload(3_000_000, seed=8)
    env.publish("model.fb", data)
    setup = "import omnihub._direct as d; d.MIN_SIZE = 100_000; d.CHUNK = 64 * 1024"
    result = fetch_under_file_size_limit(entry_json(entry(data=data)), 1_000_000, setup=setup)
    assert result["error"] == "WriteError"
    assert "File too large" in result["message"]
    assert sorted(p.name for p in (env.home / "samediff").iterdir()) == ["model.fb.lock"]
