"""Parallel ranged downloads: segments, resume per segment, fallback to one stream, integrity."""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time

import pytest
from omnihub import download
from omnihub.download import _parallel as parallel
from omnihub.download import _watch
from omnihub.download._parallel import plan
from omnihub.errors import IntegrityError
from omnihub.hub import fetch

from tests.runtime.fault_server import Fault
from tests.runtime.helpers import Env, entry, payload, spawn_fetch

SIZE = 6_000_000


@pytest.fixture(autouse=True)
def _parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four connections, and every eligible stream counts as slow at its first buffer."""
    monkeypatch.setenv("OMNIHUB_CONNECTIONS", "4")
    monkeypatch.setenv("OMNIHUB_PARALLEL_MIN_SIZE", "1000000")
    monkeypatch.setenv("OMNIHUB_TEST_ALWAYS_PARALLEL", "1")  # for child processes
    monkeypatch.setattr(parallel, "WINDOW_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "PARALLEL_BELOW", 1 << 62)


def test_plan_covers_the_file_exactly() -> None:
    for total, n in [(10, 3), (1, 8), (6_000_000, 4), (7, 7), (100, 1)]:
        segments = plan(total, n)
        assert segments[0].start == 0
        assert segments[-1].end == total
        assert all(a.end == b.start for a, b in itertools.pairwise(segments))
        assert len(segments) <= n


def test_slow_stream_switches_to_several_connections(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    assert fetch(entry(data=data)).read_bytes() == data
    gets = env.server.requests_for(where)
    assert len(gets) == 5  # the single stream, then its rest resumed as four segments
    assert gets[0].range_start is None
    ranged = sorted((g.range_start or 0, g.range_end or 0) for g in gets[1:])
    assert ranged[0][0] > 0  # segment 0 continues where the single stream stopped
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranged))  # contiguous
    assert ranged[-1][1] == SIZE - 1
    assert all(g.headers.get("if-range") for g in gets[1:])
    assert not (env.home / "samediff" / "model.fb.incomplete.json").exists()


def test_fast_stream_stays_one_stream(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIHUB_CONNECTIONS")  # not asked for: parallel only when it pays
    monkeypatch.setattr(parallel, "PARALLEL_BELOW", 0)
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(env.server.requests_for(where)) == 1


def test_one_connection_setting_keeps_one_stream(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHUB_CONNECTIONS", "1")
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(env.server.requests_for(where)) == 1


def test_a_failed_segment_resumes_only_its_missing_bytes(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.none(), Fault.reset(600_000))  # the first ranged request
    assert fetch(entry(data=data)).read_bytes() == data
    gets = env.server.requests_for(where)
    (broken,) = [g for g in gets[1:5] if g.status == 0]
    retried = gets[5:]
    assert len(retried) == 1  # only the broken segment is asked for again
    start = broken.range_start or 0
    # the bytes received before the reset are kept, up to one 256 KiB buffer in flight
    assert start + 600_000 - (256 << 10) <= (retried[0].range_start or 0) <= start + 600_000
    assert retried[0].range_end == broken.range_end


def test_server_refusing_ranges_falls_back_to_one_stream(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data, ignore_range=True)  # advertises ranges, ignores them
    assert fetch(entry(data=data)).read_bytes() == data
    statuses = [g.status for g in env.server.requests_for(where)]
    assert statuses[-1] == 200
    assert all(g.range_start is None for g in env.server.requests_for(where)[-1:])


def test_flipped_byte_in_a_segment_is_an_integrity_error(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.none(), *[Fault.flip(4_000_000)] * 4)  # whichever serves it
    with pytest.raises(IntegrityError, match="sha256"):
        fetch(entry(data=data))
    folder = env.home / "samediff"
    assert not (folder / "model.fb").exists()
    assert not (folder / "model.fb.incomplete").exists()


def test_killed_parallel_download_resumes_per_segment_in_another_process(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    never = threading.Event()
    env.server.fault(where, Fault.none(), Fault.stall(300_000, never))  # one segment hangs
    model = entry(data=data)
    meta = env.home / "samediff" / "model.fb.incomplete.json"

    def finished_segments() -> int:
        # Count whole segments, not bytes: under load a byte total can be reached while a
        # healthy segment is still short, and resuming it would be a second request.
        try:
            saved = json.loads(meta.read_text())
        except (OSError, ValueError):
            return 0
        return sum(1 for start, end, done in saved.get("segments", []) if done == end - start)

    child = spawn_fetch(model)
    try:
        deadline = time.monotonic() + 60
        while finished_segments() < 3:  # three segments done, one stalled
            assert time.monotonic() < deadline, "no progress saved"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(30)
    saved = json.loads(meta.read_text())["segments"]
    assert fetch(model).read_bytes() == data
    resumed = env.server.requests_for(where)[5:]
    assert len(resumed) == 1
    ((start, end, done),) = [seg for seg in saved if seg[2] < seg[1] - seg[0]]  # the stalled one
    assert resumed[0].range_start == start + done
    assert resumed[0].range_end == end - 1


def test_changed_file_during_parallel_resume_starts_over(env: Env) -> None:
    old, new = payload(SIZE, seed=1), payload(SIZE, seed=2)
    where = env.publish("model.fb", old)
    env.server.fault(where, Fault.none(), Fault.reset(100_000), Fault.none(), Fault.none())
    original = download._attempt
    calls: list[int] = []

    def swap(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # 1: the single stream, 2: its segments (one reset), 3: resume
            env.publish("model.fb", new)  # new ETag before the resume
        return original(*args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(download, "_attempt", swap)
        path = fetch(entry(data=new, sha256=None))
    assert path.read_bytes() == new


@pytest.mark.timeout(60)
def test_a_failing_segment_aborts_the_others_without_waiting_for_their_timeout(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One segment stalls forever, another resets: the attempt must end at once (a stuck
    reader is woken by a socket shutdown), not after the 10-minute read timeout."""
    monkeypatch.setenv("OMNIHUB_READ_TIMEOUT", "600")
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    stuck = threading.Event()
    env.server.fault(where, Fault.none(), Fault.stall(100_000, stuck), Fault.reset(200_000))
    try:
        assert fetch(entry(data=data)).read_bytes() == data
    finally:
        stuck.set()


@pytest.mark.timeout(60)
def test_ctrl_c_during_a_parallel_download_leaves_no_thread_of_ours(env: Env) -> None:
    """KeyboardInterrupt in the caller (a notebook's Ctrl-C) while segments are running:
    every segment and hashing thread is stopped and joined before anything is closed, so
    none outlives ``fetch`` (and none can write into a descriptor number reused later)."""
    import signal

    data = payload(SIZE)
    where = env.publish("model.fb", data)
    stuck = threading.Event()
    env.server.fault(where, Fault.none(), Fault.stall(100_000, stuck))

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            fetch(entry(data=data))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        stuck.set()
    assert len(env.server.requests_for(where)) >= 2  # interrupted in the parallel phase
    # the process-wide watchdog stays (it only ever calls a registered shutdown), armed for
    # nothing of this download
    ours = [t.name for t in threading.enumerate() if t.name.startswith("omnihub-")]
    assert [name for name in ours if name != "omnihub-watchdog"] == []
    assert _watch.armed() == 0
    assert not (env.home / "samediff" / "model.fb").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writeback advice is Linux-only")
def test_every_parallel_byte_is_handed_to_writeback_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each progress save starts the writeback of what each segment wrote since the last
    (as the single stream does every few MiB)."""
    advised: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((offset, offset + length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    data = payload(SIZE)
    env.publish("model.fb", data)
    assert fetch(entry(data=data)).read_bytes() == data
    ranges = sorted(advised)
    assert ranges
    # contiguous and disjoint: every byte the segments fetched, once, up to the end; the
    # single stream's first bytes (under its 8 MiB window) are left to the final fsync
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert 0 < ranges[0][0] < SIZE
    assert ranges[-1][1] == SIZE
