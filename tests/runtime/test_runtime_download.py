"""Downloads against a real loopback server with injected faults.

Every case checks the outcome and that nothing corrupt or partial is ever at the final path.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from pathlib import Path

import omnihub.download._http
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub.cache import read_record
from omnihub.download import _watch
from omnihub.errors import ConfigurationError, DownloadError, IntegrityError, ModelNotFoundError
from omnihub.hub import fetch

from tests.runtime.fault_server import Fault
from tests.runtime.helpers import Env, entry, payload, sha256

SIZE = 3_000_000


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff delays instead of sleeping (the downloader's own sleep hook)."""
    delays: list[float] = []
    monkeypatch.setattr(omnihub.download._http, "pause", delays.append)
    return delays


def _assert_clean(env: Env, file: str = "model.fb") -> None:
    """No final file and no half-written data anywhere visible as a model."""
    final = env.home / "samediff" / file
    assert not final.exists()


def test_download_verifies_and_records(env: Env) -> None:
    data = payload(SIZE)
    path_on_server = env.publish("model.fb", data)
    path = fetch(entry(data=data))
    assert path == env.home / "samediff" / "model.fb"
    assert path.read_bytes() == data
    record = read_record(path)
    assert record is not None
    assert record.sha256 == sha256(data)
    assert record.size == SIZE
    assert record.origin == "declared"
    assert not path.with_name("model.fb.incomplete").exists()
    assert [r.status for r in env.server.requests_for(path_on_server)] == [200]


def test_truncated_body_resumes_with_range(env: Env, sleeps: list[float]) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.truncate(2_000_000))
    path = fetch(entry(data=data))
    assert path.read_bytes() == data
    second = env.server.requests_for(where)[1]
    assert second.status == 206
    assert second.range_start
    assert second.range_start > 0
    assert second.headers.get("if-range")  # resumed only with a validator
    assert len(sleeps) == 1


def test_always_truncated_fails_after_retries_without_final_file(
    env: Env, sleeps: list[float]
) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data, etag=None, last_modified=None)  # no resume possible
    env.server.fault(where, *[Fault.truncate(1000)] * 5)
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1.*failed after 5 attempts"):
        fetch(entry(data=data))
    assert len(env.server.requests_for(where)) == 5
    assert len(sleeps) == 4
    assert max(sleeps) <= 0.05
    _assert_clean(env)


def test_connection_reset_mid_body(env: Env, sleeps: list[float]) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.reset(1_500_000))
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(env.server.requests_for(where)) == 2


def test_503_then_200(env: Env, sleeps: list[float]) -> None:
    data = payload(1000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.status(503), Fault.status(502))
    assert fetch(entry(data=data)).read_bytes() == data
    assert [r.status for r in env.server.requests_for(where)] == [503, 502, 200]
    assert len(sleeps) == 2
    assert all(0 < s <= 0.05 for s in sleeps)


def test_429_honours_retry_after(
    env: Env, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    data = payload(1000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.status(429, {"Retry-After": "3"}))
    with caplog.at_level(logging.WARNING, logger="omnihub"):
        assert fetch(entry(data=data)).read_bytes() == data
    assert sleeps == [3.0]
    assert "HTTP 429" in caplog.text
    assert "retrying in 3.00 s" in caplog.text


def test_retry_after_beyond_the_limit_fails_fast(
    env: Env, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHUB_RETRY_AFTER_MAX", "10")
    where = env.publish("model.fb", b"x")
    env.server.fault(where, Fault.status(503, {"Retry-After": "3600"}))
    with pytest.raises(DownloadError, match="retry after 3600 s"):
        fetch(entry(data=b"x"))
    assert sleeps == []


def test_the_retry_after_limit_survives_a_later_retry(
    env: Env, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib3 rebuilds its Retry after every attempt: the configured limit must go along."""
    monkeypatch.setenv("OMNIHUB_RETRY_AFTER_MAX", "5000")
    data = payload(1000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.status(503), Fault.status(503, {"Retry-After": "3600"}))
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(sleeps) == 2
    assert sleeps[1] == 3600.0
    assert [r.status for r in env.server.requests_for(where)] == [503, 503, 200]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (404, ModelNotFoundError),
        (410, ModelNotFoundError),
        (401, DownloadError),
        (403, DownloadError),
    ],
)
def test_client_errors_are_immediate(
    env: Env, sleeps: list[float], code: int, error: type[Exception]
) -> None:
    where = env.publish("model.fb", b"data")
    env.server.fault(where, Fault.status(code))
    with pytest.raises(error, match=re.escape(f"{env.server.url}{where} answered HTTP {code}")):
        fetch(entry(data=b"data"))
    assert len(env.server.requests_for(where)) == 1
    assert sleeps == []
    _assert_clean(env)


def test_missing_file_is_not_found_naming_url_and_path(env: Env) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        fetch(entry("absent.fb"))
    message = str(info.value)
    assert f"{env.base}/samediff/absent.fb" in message
    assert str(env.home / "samediff" / "absent.fb") in message


def test_flipped_byte_is_rejected(env: Env, sleeps: list[float]) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.flip(SIZE // 2))
    with pytest.raises(IntegrityError, match=f"expected {sha256(data)}") as info:
        fetch(entry(data=data))
    assert str(env.home / "samediff" / "model.fb") in str(info.value)
    _assert_clean(env)
    assert not (env.home / "samediff" / "model.fb.incomplete").exists()
    assert len(env.server.requests_for(where)) == 1  # integrity failures are not retried


def test_wrong_size_is_rejected(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.body(data[:-10]))
    with pytest.raises(IntegrityError, match=f"expected {SIZE}"):
        fetch(entry(data=data))
    _assert_clean(env)


def test_wrong_size_without_declared_sha(env: Env) -> None:
    data = payload(5000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.body(data + b"extra"))
    with pytest.raises(IntegrityError, match="5005 bytes, expected 5000"):
        fetch(entry(data=data, sha256=None))
    _assert_clean(env)


def test_body_without_length_is_read_at_most_one_byte_past_the_expected_size(env: Env) -> None:
    data = payload(1000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.unsized(payload(20_000_000)))
    with pytest.raises(IntegrityError, match="size 1001 bytes, expected 1000"):
        fetch(entry(data=data))
    _assert_clean(env)


def test_body_without_length_is_accepted_when_right(env: Env) -> None:
    data = payload(300_000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.unsized(data))
    assert fetch(entry(data=data, sha256=None)).read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(env: Env, sleeps: list[float]) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.truncate(2_000_000), Fault.ignore_range())
    assert fetch(entry(data=data)).read_bytes() == data
    second = env.server.requests_for(where)[1]
    assert second.range_start
    assert second.status == 200


def test_changed_file_between_partial_and_resume_starts_over(env: Env, sleeps: list[float]) -> None:
    old, new = payload(SIZE, seed=1), payload(SIZE, seed=2)
    where = env.publish("model.fb", old)
    env.server.fault(where, Fault.truncate(2_000_000))
    original_read = omnihub.download._attempt
    swapped = threading.Event()

    def swap_then_attempt(*args: object, **kwargs: object) -> object:
        if env.server.requests_for(where) and not swapped.is_set():
            swapped.set()
            env.publish("model.fb", new)  # new ETag: If-Range no longer matches
        return original_read(*args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(omnihub.download, "_attempt", swap_then_attempt)
        path = fetch(entry(data=new, sha256=None))
    assert path.read_bytes() == new  # never a mix of old and new bytes
    second = env.server.requests_for(where)[1]
    assert second.range_start
    assert second.status == 200


def test_416_on_resume_starts_over(env: Env, sleeps: list[float]) -> None:
    data = payload(1000)
    where = env.publish("model.fb", data, etag='"v1"')
    target = env.home / "samediff"
    target.mkdir(parents=True)
    (target / "model.fb.incomplete").write_bytes(payload(5000, seed=9))
    (target / "model.fb.incomplete.json").write_text(
        json.dumps({"url": env.server.url + where, "etag": '"v1"', "last_modified": None})
    )
    assert fetch(entry(data=data)).read_bytes() == data
    assert [r.status for r in env.server.requests_for(where)] == [416, 200]


def test_resumed_prefix_that_is_corrupt_is_redownloaded_once(env: Env, sleeps: list[float]) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data, etag='"v1"')
    target = env.home / "samediff"
    target.mkdir(parents=True)
    bad_prefix = bytearray(data[:1_000_000])
    bad_prefix[10] ^= 0xFF
    (target / "model.fb.incomplete").write_bytes(bytes(bad_prefix))
    (target / "model.fb.incomplete.json").write_text(
        json.dumps({"url": env.server.url + where, "etag": '"v1"', "last_modified": None})
    )
    assert fetch(entry(data=data)).read_bytes() == data
    assert [r.status for r in env.server.requests_for(where)] == [206, 200]


def test_slow_drip_past_read_timeout_is_retried(
    env: Env,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OMNIHUB_READ_TIMEOUT", "1")
    data = payload(100)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.drip(3.0))
    with caplog.at_level(logging.WARNING, logger="omnihub"):
        assert fetch(entry(data=data)).read_bytes() == data
    assert "TimeoutError" in caplog.text or "ReadTimeout" in caplog.text
    assert len(env.server.requests_for(where)) >= 2  # the dripping one counts from its arrival


def test_redirect_loop_is_reported(env: Env) -> None:
    env.server.add_redirect("/zoo/samediff/model.fb", env.server.url + "/loop")
    env.server.add_redirect("/loop", env.server.url + "/zoo/samediff/model.fb")
    with pytest.raises(DownloadError, match="too many redirects"):
        fetch(entry(data=b"x"))
    assert len(env.server.log) == omnihub.download.MAX_REDIRECTS + 1


def test_redirect_is_followed(env: Env) -> None:
    data = payload(1000)
    env.server.add("/elsewhere/blob", data)
    env.server.add_redirect("/zoo/samediff/model.fb", "/elsewhere/blob", code=307)
    assert fetch(entry(data=data)).read_bytes() == data


def test_redirect_downgrade_to_remote_http_is_refused(env: Env) -> None:
    env.server.add_redirect("/zoo/samediff/model.fb", "http://example.invalid/model.fb")
    with pytest.raises(ConfigurationError, match="plain http is allowed only to loopback"):
        fetch(entry(data=b"x"))
    _assert_clean(env)


def test_redirect_to_file_url_is_refused(env: Env) -> None:
    env.server.add_redirect("/zoo/samediff/model.fb", "file:///etc/passwd")
    with pytest.raises(ConfigurationError, match="file:// URLs are allowed only"):
        fetch(entry(data=b"x"))


def test_content_length_disagreeing_with_catalogue_fails_before_download(env: Env) -> None:
    data = payload(SIZE)
    env.publish("model.fb", data)
    with pytest.raises(IntegrityError, match=f"announces {SIZE} bytes, expected 10"):
        fetch(entry(data=data, size=10))
    _assert_clean(env)
    assert not (env.home / "samediff" / "model.fb.incomplete").exists()


def test_partial_file_is_never_at_final_path_while_downloading(env: Env) -> None:
    data = payload(12_000_000)  # the receiver writes whole 4 MiB buffers
    where = env.publish("model.fb", data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(9_000_000, release))
    final = env.home / "samediff" / "model.fb"
    partial = final.with_name("model.fb.incomplete")
    result: list[Path] = []
    worker = threading.Thread(target=lambda: result.append(fetch(entry(data=data))))
    worker.start()
    try:
        for _ in range(3000):  # up to a minute on a loaded machine
            if partial.exists() and partial.stat().st_size > 0:
                break
            release.wait(0.02)
        assert partial.exists()
        assert not final.exists()
    finally:
        release.set()
        worker.join(30)
    assert result
    assert result[0].read_bytes() == data


def test_disk_write_failure_is_clear_and_leaves_nothing(env: Env) -> None:
    from tests.runtime.helpers import entry_json, fetch_under_file_size_limit

    data = payload(SIZE)
    env.publish("model.fb", data)
    result = fetch_under_file_size_limit(entry_json(entry(data=data)), 1_000_000)
    assert result["error"] == "WriteError"
    assert "model.fb.incomplete" in result["message"]
    assert "File too large" in result["message"]
    folder = env.home / "samediff"
    leftovers = sorted(p.name for p in folder.iterdir())
    assert leftovers == ["model.fb.lock"]  # no partial, no final file


# -- the liveness watchdog (omnihub.download._watch) ------------------------------------------


def _stopped_within(watch: _watch.Watch, seconds: float) -> bool:
    stopped = threading.Event()
    watch.guard(stopped.set)
    return stopped.wait(seconds)


def test_watch_stops_a_body_that_brings_too_little() -> None:
    watch = _watch.Watch(min_rate=1000, window=0.2, deadline=0)
    try:
        watch.add(10)
        assert _stopped_within(watch, 10)
        assert watch.reason is not None
        assert "bytes in 0.2 s, less than OMNIHUB_MIN_RATE=1000" in watch.reason
    finally:
        watch.close()
    assert _watch.armed() == 0


def test_watch_leaves_a_steady_body_alone() -> None:
    watch = _watch.Watch(min_rate=1000, window=0.3, deadline=0)
    try:
        stopped = threading.Event()
        watch.guard(stopped.set)
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            watch.add(100_000)  # far above 300 bytes per window, whatever the load
            time.sleep(0.01)
        assert not stopped.is_set(), watch.reason
    finally:
        watch.close()


def test_watch_deadline_stops_even_a_fast_body_and_a_late_guard_stops_at_once() -> None:
    watch = _watch.Watch(min_rate=0, window=0, deadline=0.2)
    try:
        assert _stopped_within(watch, 10)
        assert watch.reason == "the attempt took more than OMNIHUB_ATTEMPT_DEADLINE=0.2 s"
        assert _stopped_within(watch, 0)  # registered after firing: stopped immediately
    finally:
        watch.close()


def test_a_closed_watch_never_fires_and_leaves_nothing_armed() -> None:
    stopped = threading.Event()
    for _ in range(200):
        watch = _watch.Watch(min_rate=10**9, window=0.05, deadline=0.05)
        watch.guard(stopped.set)
        watch.close()
    assert _watch.armed() == 0
    assert not stopped.wait(0.3)


# Every deadline is at least 200 ms out, so each cancel() lands before its deadline even on a
# loaded machine (a 0 ms deadline may fire before the test gets to cancel it).
@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([200, 260, 320]), st.booleans()), min_size=1, max_size=9))
def test_watchdog_calls_exactly_the_deadlines_left_armed_in_due_order(
    plan: list[tuple[int, bool]],
) -> None:
    watch = _watch.Watch(min_rate=0, window=0, deadline=0)
    called: list[int] = []
    cancels = [
        watch.after(ms / 1000, functools.partial(called.append, i))
        for i, (ms, _) in enumerate(plan)
    ]
    for cancel, (_, drop) in zip(cancels, plan, strict=True):
        if drop:
            cancel()
    kept = sorted((ms, i) for i, (ms, drop) in enumerate(plan) if not drop)
    until = time.monotonic() + 10
    while len(called) < len(kept) and time.monotonic() < until:
        time.sleep(0.01)
    time.sleep(0.05)  # a cancelled one firing late would show here
    assert called == [i for _, i in kept]
    assert _watch.armed() == 0
