"""The cache: cheap hits, self-repair, trust on first use, force_download, offline, maintenance."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import omnihub.cache
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.cache import Record, hash_file, read_record, write_record
from omnihub.cache_admin import prune, remove, scan, verify
from omnihub.errors import IntegrityError, OfflineError, WriteError
from omnihub.hub import fetch, target_path
from omnihub.layout import record_path

from tests.runtime.fault_server import Fault
from tests.runtime.helpers import Env, entry, payload, sha256


def test_second_call_is_a_hit_without_network_or_rehash(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    first = fetch(model)
    calls: list[Path] = []

    def spy(path: Path) -> tuple[str, int]:
        calls.append(path)
        return ("", 0)

    monkeypatch.setattr(omnihub.cache, "hash_file", spy)
    assert fetch(model) == first
    assert len(env.server.requests_for(where)) == 1
    assert calls == []


def test_a_hit_reads_only_the_home_a_download_setting_is_checked_when_needed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached model is returned whatever a download setting says; the mistake is reported
    (naming the variable) when a download needs the settings."""
    from omnihub.errors import ConfigurationError

    data = payload(10_000)
    env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    monkeypatch.setenv("OMNIHUB_RETRIES", "lots")
    assert fetch(model) == path  # a hit
    with pytest.raises(ConfigurationError, match="OMNIHUB_RETRIES"):
        fetch(model, force_download=True)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_planted_as_the_record_is_no_record_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "model.fb"
    path.write_bytes(b"x")
    os.mkfifo(record_path(path))  # nobody ever writes to it: a blocking read would hang
    assert read_record(path) is None


def test_truncated_cached_file_is_repaired_with_a_warning(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    with path.open("r+b") as fh:
        fh.truncate(5000)
    with caplog.at_level(logging.WARNING, logger="omnihub"):
        assert fetch(model).read_bytes() == data
    assert "is corrupt" in caplog.text
    assert "moved aside to" in caplog.text
    assert path.with_name("model.fb.corrupt").read_bytes() == data[:5000]
    assert len(env.server.requests_for(where)) == 2


def test_replaced_content_same_size_is_noticed_by_mtime(env: Env) -> None:
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    path.write_bytes(payload(10_000, seed=5))  # same size, new mtime
    assert fetch(model).read_bytes() == data
    assert len(env.server.requests_for(where)) == 2


def test_touched_but_intact_file_is_rehashed_not_downloaded(env: Env) -> None:
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    os.utime(path, ns=(1, 1))
    assert fetch(model) == path
    assert len(env.server.requests_for(where)) == 1
    record = read_record(path)
    assert record is not None
    assert record.mtime_ns == 1


def test_file_without_record_is_adopted_after_hashing(env: Env) -> None:
    """A file placed by DL4J (same layout, no record) is verified and used, not downloaded."""
    data = payload(10_000)
    where = env.publish("model.fb", data)
    path = env.home / "samediff" / "model.fb"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert fetch(entry(data=data)) == path
    assert env.server.requests_for(where) == []
    assert read_record(path) is not None


def test_catalogue_sha_change_replaces_a_stale_copy(env: Env) -> None:
    old, new = payload(1000, seed=1), payload(1000, seed=2)
    where = env.publish("model.fb", old)
    fetch(entry(data=old))
    env.publish("model.fb", new)
    assert fetch(entry(data=new)).read_bytes() == new
    assert len(env.server.requests_for(where)) == 2


def test_trust_on_first_use_detects_a_changed_upstream(env: Env) -> None:
    first, changed = payload(1000, seed=1), payload(1000, seed=2)
    env.publish("model.fb", first)
    model = entry(data=first, declare=False)
    path = fetch(model)
    record = read_record(path)
    assert record is not None
    assert record.origin == "first-use"
    assert record.sha256 == sha256(first)
    env.publish("model.fb", changed)
    path.unlink()  # lost locally: the download again must match the first-use pin
    with pytest.raises(IntegrityError, match=f"expected {sha256(first)}"):
        fetch(model)
    assert not path.exists()
    # force_download=True is the user's way to accept the new upstream (issue 15 item 4)
    assert fetch(model, force_download=True).read_bytes() == changed


def test_trust_on_first_use_repairs_local_corruption(env: Env) -> None:
    data = payload(1000)
    env.publish("model.fb", data)
    model = entry(data=data, declare=False)
    path = fetch(model)
    path.write_bytes(b"tampered")
    assert fetch(model).read_bytes() == data


def test_force_download_keeps_the_good_copy_until_verified(env: Env) -> None:
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    inode = path.stat().st_ino
    env.server.fault(where, Fault.flip(3))
    with pytest.raises(IntegrityError):
        fetch(model, force_download=True)
    assert path.read_bytes() == data
    assert path.stat().st_ino == inode
    assert fetch(model, force_download=True).read_bytes() == data
    assert path.stat().st_ino != inode  # replaced by the new verified copy
    assert len(env.server.requests_for(where)) == 3


def test_offline_with_a_cached_copy_uses_it(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(1000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    fetch(model)
    monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    assert fetch(model).read_bytes() == data
    assert len(env.server.requests_for(where)) == 1


def test_offline_with_a_corrupt_copy_says_so(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(1000)
    env.publish("model.fb", data)
    model = entry(data=data)
    path = fetch(model)
    path.write_bytes(b"garbage")
    monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="is corrupt") as info:
        fetch(model)
    assert str(path) in str(info.value)
    assert len(env.server.log) == 1


def test_offline_without_a_copy_names_the_expected_path(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.publish("model.fb", b"x")
    monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="OMNIHUB_OFFLINE") as info:
        fetch(entry(data=b"x"))
    assert str(env.home / "samediff" / "model.fb") in str(info.value)
    assert env.server.log == []
    with pytest.raises(OfflineError, match="force_download"):
        fetch(entry(data=b"x"), force_download=True)


def test_scan_verify_remove(env: Env) -> None:
    a, b = payload(1000, seed=1), payload(2000, seed=2)
    env.publish("a.fb", a)
    env.publish("sub/b.onnx", b, framework="onnx")
    from omnihub._enums import Framework

    fetch(entry("a.fb", data=a))
    fetch(entry("sub/b.onnx", data=b, framework=Framework.ONNX))
    found = {(c.framework, c.file): c for c in scan(env.home)}
    assert set(found) == {("samediff", "a.fb"), ("onnx", "sub/b.onnx")}
    assert found[("onnx", "sub/b.onnx")].size == 2000
    assert all(c.state == "ok" and c.sha256 for c in found.values())
    assert all(v.ok for v in verify(home=env.home))

    target = found[("samediff", "a.fb")].path
    with target.open("r+b") as fh:  # same size and mtime kept: only a full rehash sees it
        st = target.stat()
        fh.write(b"\x00")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    bad = [v for v in verify(home=env.home, repair=True) if not v.ok]
    assert len(bad) == 1
    assert bad[0].path == target
    assert "moved aside" in bad[0].message
    assert not target.exists()

    freed = remove([found[("onnx", "sub/b.onnx")]])
    assert freed >= 2000
    assert scan(env.home) == []


def test_verify_records_unrecorded_files(tmp_path: Path) -> None:
    path = tmp_path / "dl4j" / "m.zip"
    path.parent.mkdir()
    path.write_bytes(b"dl4j model")
    (result,) = verify(home=tmp_path)
    assert result.ok
    assert "first use" in result.message
    assert (scan(tmp_path)[0].sha256, scan(tmp_path)[0].state) == (sha256(b"dl4j model"), "ok")


def test_prune_removes_leftovers_and_applies_a_budget(env: Env) -> None:
    a, b = payload(1000, seed=1), payload(3000, seed=2)
    env.publish("a.fb", a)
    env.publish("b.fb", b)
    pa = fetch(entry("a.fb", data=a))
    pb = fetch(entry("b.fb", data=b))
    folder = pa.parent
    (folder / "c.fb.incomplete").write_bytes(b"partial")
    (folder / "c.fb.incomplete.json").write_text("{}")
    (folder / "gone.fb.omnihub.json").write_text("{}")
    (folder / "a.fb.corrupt").write_bytes(b"bad")
    os.utime(pb.with_name("b.fb.omnihub.json"), (1, 1))  # b used long ago
    os.utime(pb, (1, 1))
    os.utime(pa.with_name("a.fb.omnihub.json"))

    dry = prune(env.home, dry_run=True)
    assert (folder / "c.fb.incomplete").exists()
    assert dry
    reasons = {p.path.name: p.reason for p in prune(env.home, max_size=2000)}
    assert reasons["c.fb.incomplete"] == "partial download"
    assert reasons["gone.fb.omnihub.json"] == "record of a missing file"
    assert reasons["a.fb.corrupt"] == "quarantined corrupt copy"
    assert reasons["b.fb"].startswith("least recently used")
    assert pa.exists()
    assert not pb.exists()
    assert [c.file for c in scan(env.home)] == ["a.fb"]
    # Lock files are never deleted, not even the pruned model's: every holder, now and
    # later, locks the same inode.
    assert not [name for name in reasons if name.endswith(".lock")]
    assert (folder / "a.fb.lock").exists()
    assert (folder / "b.fb.lock").exists()


def test_hash_file_matches_hashlib(tmp_path: Path) -> None:
    data = payload(3_000_001)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == (sha256(data), len(data))


@pytest.mark.parametrize("file", ["../escape.fb", "/etc/passwd", "a\\..\\b", "C:x.fb"])
def test_names_escaping_the_home_fail_before_any_network(env: Env, file: str) -> None:
    from omnihub.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="file name"):
        fetch(entry(file, data=b"x"))
    assert env.server.log == []
    assert not env.home.exists() or not any(env.home.rglob("*"))


_RECORDS = st.builds(
    Record,
    size=st.integers(0, 2**63 - 1),
    mtime_ns=st.integers(0, 2**63 - 1),
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    origin=st.sampled_from(["declared", "first-use"]),
    url=st.none() | st.text(max_size=200),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=_RECORDS)
def test_any_record_reads_back_as_written(tmp_path: Path, record: Record) -> None:
    target = tmp_path / "model.fb"
    write_record(target, record)
    assert read_record(target) == record
    assert [p.name for p in tmp_path.iterdir()] == [record_path(target).name]  # no temp left


_JSONISH = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70)
_RECORD_LIKE = st.fixed_dictionaries(
    {"size": _JSONISH, "mtime_ns": _JSONISH, "sha256": _JSONISH},
    optional={"origin": _JSONISH, "url": _JSONISH, "extra": _JSONISH},
).map(lambda fields: json.dumps(fields).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | _RECORD_LIKE | st.just(b"[" * 100_000))
def test_any_record_file_parses_or_is_none_never_raises(tmp_path: Path, body: bytes) -> None:
    """The one parser: whatever a crash, a disk or another program left, a record is a
    :class:`Record` (then it also writes back identically) or None (a rehash follows)."""
    target = tmp_path / "model.fb"
    record_path(target).write_bytes(body)
    found = read_record(target)
    assert found is None or isinstance(found, Record)
    if found is not None:
        assert type(found.size) is int
        assert type(found.mtime_ns) is int
        assert isinstance(found.sha256, str)
        assert isinstance(found.origin, str)
        write_record(target, found)
        assert read_record(target) == found


def test_a_record_the_disk_refuses_after_the_rename_is_a_clear_error(env: Env) -> None:
    """The publish got the file into place but could not record it (here a directory sits
    where the record goes): a WriteError says so, and the next call rehashes the file in
    place instead of downloading it again."""
    data = payload(10_000)
    where = env.publish("model.fb", data)
    model = entry(data=data)
    path = target_path(model)
    record_path(path).mkdir(parents=True)
    with pytest.raises(WriteError, match="is in place but the disk failed to record it") as info:
        fetch(model)
    assert str(path) in str(info.value)
    assert path.read_bytes() == data
    assert not path.with_name("model.fb.incomplete").exists()
    assert fetch(model) == path
    assert len(env.server.requests_for(where)) == 1
