"""Publish first, fsync after (Linux): a record written before its file was durable is trusted
only during the boot that wrote it, and is made plain once the background fsync is done.

The reboot is simulated by a record naming another boot id: exactly what a machine that crashed
and restarted would find beside a file whose pages may never have reached the disk.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from pathlib import Path

import omnihub._durable as durable
import pytest
from omnihub._value import evolve
from omnihub.cache import (
    Record,
    is_fresh,
    mark_lost,
    read_record,
    record_path,
    scan,
    verify,
    write_record,
)
from omnihub.errors import OfflineError
from omnihub.hub import fetch

from tests.runtime.helpers import Env, entry, entry_json, payload, run_python, sha256

pytestmark = pytest.mark.skipif(
    durable.boot_id() is None, reason="no /proc/sys/kernel/random/boot_id here"
)

_OTHER_BOOT = "00000000-0000-4000-8000-000000000000"


def _settled_download(env: Env, data: bytes) -> tuple[Path, Record, str]:
    """Download ``data`` as model.fb and wait for it to settle: its path, its record and the
    URL path the server logs it under."""
    where = env.publish("model.fb", data)
    path = fetch(entry(data=data))
    durable.wait_settled()
    record = read_record(path)
    assert record is not None
    return path, record, where


def test_a_download_is_published_with_this_boot_and_settled_after(env: Env) -> None:
    data = payload(50_000)
    path, record, _ = _settled_download(env, data)
    assert record.boot_id is None  # fsynced, then marked durable
    assert record.sha256 == entry(data=data).sha256
    assert path.read_bytes() == data


def test_a_process_that_exits_after_the_call_leaves_a_settled_record(env: Env) -> None:
    """The settling thread is not a daemon: a script that ends right after the call waits."""
    data = payload(60_000, seed=3)
    env.publish("model.fb", data)
    model = entry(data=data)
    code = (
        "import json, sys\n"
        "from omnihub.catalog import catalog_from_json\n"
        "from omnihub.hub import fetch\n"
        f"model = catalog_from_json({entry_json(model)!r}).models[0]\n"
        "print(json.dumps({'path': str(fetch(model))}))\n"
    )
    result = run_python(code, env={"OMNIHUB_HOME": str(env.home), "OMNIHUB_URL": env.base})
    record = read_record(env.home / "samediff" / "model.fb")
    assert result["path"] == str(env.home / "samediff" / "model.fb")
    assert record is not None
    assert record.boot_id is None


def test_a_record_of_this_boot_is_a_hit(env: Env) -> None:
    data = payload(10_000)
    model = entry(data=data)
    path, record, where = _settled_download(env, data)
    write_record(path, evolve(record, boot_id=durable.boot_id()))
    assert is_fresh(path, model.sha256, model.size)
    assert fetch(model) == path
    assert len(env.server.requests_for(where)) == 1


def test_after_a_reboot_an_unsettled_file_is_rehashed_and_kept_if_good(env: Env) -> None:
    data = payload(10_000)
    model = entry(data=data)
    path, record, where = _settled_download(env, data)
    write_record(path, evolve(record, boot_id=_OTHER_BOOT))
    assert not is_fresh(path, model.sha256, model.size)
    assert fetch(model).read_bytes() == data
    # rehashed, not downloaded again
    assert len(env.server.requests_for(where)) == 1
    repaired = read_record(path)
    assert repaired is not None
    assert repaired.boot_id is None


def test_after_a_reboot_lost_pages_are_caught_and_downloaded_again(env: Env) -> None:
    """A crash can leave the right size full of zeros; the record alone cannot tell."""
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    durable.wait_settled()
    path.write_bytes(bytes(len(data)))
    st = path.stat()
    write_record(path, Record(len(data), st.st_mtime_ns, sha256(data), boot_id=_OTHER_BOOT))
    assert fetch(model).read_bytes() == data
    assert len(env.server.requests_for(where)) == 2
    assert path.with_name("model.fb.corrupt").read_bytes() == bytes(len(data))


def test_verify_settles_an_unsettled_record(env: Env) -> None:
    data = payload(10_000)
    path, record, _ = _settled_download(env, data)
    write_record(path, evolve(record, boot_id=_OTHER_BOOT))
    (result,) = verify(home=env.home)
    assert result.ok
    settled = read_record(path)
    assert settled is not None
    assert settled.boot_id is None


def test_without_a_boot_id_the_file_is_fsynced_before_it_is_published(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portable rule (not Linux): no background thread, a plain record at once."""
    monkeypatch.setattr(durable, "_boot", [None])
    data = payload(20_000)
    env.publish("model.fb", data)
    before = {t.ident for t in threading.enumerate()}
    path = fetch(entry(data=data))
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert [t.name for t in started if t.name == "omnihub-settle"] == []
    record = json.loads(record_path(path).read_text())
    assert record["boot_id"] is None


# -- a file the disk failed to keep (the real failure: tests/reliability, on a loop device) --------


def test_a_lost_record_is_never_a_hit(env: Env) -> None:
    data = payload(10_000, seed=5)
    model = entry(data=data)
    path, record, _ = _settled_download(env, data)
    mark_lost(path, record)
    marked = read_record(path)
    assert marked == evolve(record, lost=True)
    assert json.loads(record_path(path).read_text())["lost"] is True
    assert not is_fresh(path, model.sha256, model.size)
    assert [c.state for c in scan(env.home)] == ["lost"]


@pytest.mark.parametrize("value", ["yes", 1, None, [], "false"])
def test_a_record_with_any_other_lost_value_counts_as_lost(env: Env, value: object) -> None:
    """Only an absent or literal ``false`` vouches (a hand-edited record errs on the safe side)."""
    data = payload(10_000, seed=6)
    model = entry(data=data)
    path, _, _ = _settled_download(env, data)
    fields = json.loads(record_path(path).read_text())
    assert fields["lost"] is False
    assert is_fresh(path, model.sha256, model.size)
    record_path(path).write_text(json.dumps({**fields, "lost": value}))
    assert not is_fresh(path, model.sha256, model.size)
    parsed = read_record(path)
    assert parsed is not None
    assert parsed.lost is True


def test_fetch_removes_a_lost_file_and_downloads_it_again(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Even though its bytes (still in the page cache) hash right: they vouch for nothing."""
    data = payload(10_000, seed=7)
    model = entry(data=data)
    path, record, where = _settled_download(env, data)
    mark_lost(path, record)
    with caplog.at_level(logging.WARNING, logger="omnihub"):
        assert fetch(model).read_bytes() == data
    durable.wait_settled()
    assert len(env.server.requests_for(where)) == 2
    fresh = read_record(path)
    assert fresh is not None
    assert fresh.lost is False
    assert any(
        f"the disk failed to keep {path}" in m and "removed it and fetching it again" in m
        for m in caplog.messages
    ), caplog.messages
    assert not path.with_name("model.fb.corrupt").exists()  # nothing to keep for forensics


def test_verify_reports_a_lost_file_and_repair_removes_it(env: Env) -> None:
    data = payload(10_000, seed=8)
    path, record, _ = _settled_download(env, data)
    mark_lost(path, record)
    (result,) = verify(home=env.home)
    assert not result.ok
    assert result.sha256 == sha256(data)  # the bytes hash right, and still do not count
    assert result.message == "the disk failed to keep it (an fsync reported a write-back error)"
    assert path.exists()
    (result,) = verify(home=env.home, repair=True)
    assert not result.ok
    assert result.message.endswith("; removed")
    assert not path.exists()
    assert not record_path(path).exists()


def test_a_failed_background_fsync_leaves_a_newer_download_alone(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The settling thread of an older copy must not mark a replacement lost: the record it
    would mark is no longer the one it published."""
    data = payload(10_000, seed=9)
    path, record, _ = _settled_download(env, data)
    newer = evolve(record, sha256="0" * 64, boot_id=durable.boot_id())
    write_record(path, newer)

    def failing(_: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(durable, "sync_file", failing)
    with caplog.at_level(logging.WARNING, logger="omnihub"):
        durable.settle(path, record, label="m")
        durable.wait_settled()
    assert read_record(path) == newer
    assert any(
        m.startswith(f"m: could not make {path} durable")
        and m.endswith("a newer download has replaced it")
        for m in caplog.messages
    ), caplog.messages


def test_offline_a_lost_file_is_an_offline_error_that_says_so(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(10_000, seed=10)
    model = entry(data=data)
    path, record, where = _settled_download(env, data)
    mark_lost(path, record)
    monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        fetch(model)
    assert str(info.value) == (
        "testpkg.m_model was not kept by the disk (an fsync of it failed) (removed) and offline "
        f"mode is on (OMNIHUB_OFFLINE=1); expected a verified file at {path}"
    )
    assert not path.exists()
    assert len(env.server.requests_for(where)) == 1
