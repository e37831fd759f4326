"""A local user who can write into a shared cache directory plants symlinks and fake sidecars.

Whatever they plant, omnihub must never write (append, truncate, replace) a file outside
OMNIHUB_HOME, and must never hand out content that fails the catalogue's sha256.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from omnihub.errors import OmnihubError
from omnihub.hub import fetch

from tests.runtime.helpers import Env, entry, payload, sha256

FILE = "model.fb"
VICTIM = b"the victim's own file: must never change\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the home, writable by the user running omnihub."""
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    return path


def _folder(env: Env) -> Path:
    folder = env.home / "samediff"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fetch_and_check(env: Env, data: bytes, victim: Path) -> None:
    try:
        path = fetch(entry(data=data))
    except OmnihubError:
        pass  # refusing is fine; writing outside the home is not
    else:
        assert path.read_bytes() == data
        assert not path.is_symlink()
    assert victim.read_bytes() == VICTIM
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"]


def test_symlink_planted_at_the_cache_path(env: Env, victim: Path) -> None:
    data = payload(10_000, seed=90)
    env.publish(FILE, data)
    (_folder(env) / FILE).symlink_to(victim)
    _fetch_and_check(env, data, victim)


def test_symlink_planted_at_the_cache_path_with_a_forged_record(env: Env, victim: Path) -> None:
    """The record claims the victim file is the model: the catalogue hash disagrees."""
    data = payload(10_000, seed=91)
    env.publish(FILE, data)
    folder = _folder(env)
    (folder / FILE).symlink_to(victim)
    st = victim.stat()
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256(VICTIM)}
    (folder / (FILE + ".omnihub.json")).write_text(json.dumps({**record, "origin": "declared"}))
    _fetch_and_check(env, data, victim)


def test_symlink_planted_as_the_partial_file(env: Env, victim: Path) -> None:
    data = payload(10_000, seed=92)
    env.publish(FILE, data)
    (_folder(env) / (FILE + ".incomplete")).symlink_to(victim)
    _fetch_and_check(env, data, victim)


def test_symlink_partial_with_forged_resume_metadata(env: Env, victim: Path) -> None:
    data = payload(10_000, seed=93)
    where = env.publish(FILE, data, etag='"e1"')
    folder = _folder(env)
    (folder / (FILE + ".incomplete")).symlink_to(victim)
    meta = {"url": env.server.url + where, "etag": '"e1"', "last_modified": None}
    (folder / (FILE + ".incomplete.json")).write_text(json.dumps(meta))
    _fetch_and_check(env, data, victim)


@pytest.mark.parametrize("sidecar", [".omnihub.json", ".incomplete.json"])
def test_symlink_planted_at_a_predictable_temporary_name(
    env: Env, victim: Path, sidecar: str
) -> None:
    data = payload(10_000, seed=94)
    env.publish(FILE, data)
    (_folder(env) / f"{FILE}{sidecar}.{os.getpid()}.tmp").symlink_to(victim)
    _fetch_and_check(env, data, victim)


def test_symlink_planted_as_the_lock_file(env: Env, victim: Path) -> None:
    data = payload(10_000, seed=95)
    env.publish(FILE, data)
    (_folder(env) / (FILE + ".lock")).symlink_to(victim)
    _fetch_and_check(env, data, victim)


def test_planted_partial_with_wrong_prefix_is_not_published(env: Env) -> None:
    """A fake partial (garbage prefix) with valid-looking resume metadata: the resumed file
    fails its hash, and omnihub starts over instead of publishing the attacker's bytes."""
    data = payload(10_000, seed=96)
    where = env.publish(FILE, data, etag='"e2"')
    folder = _folder(env)
    (folder / (FILE + ".incomplete")).write_bytes(b"EVIL" * 1000)
    meta = {"url": env.server.url + where, "etag": '"e2"', "last_modified": None}
    (folder / (FILE + ".incomplete.json")).write_text(json.dumps(meta))
    assert fetch(entry(data=data)).read_bytes() == data
    assert [r.status for r in env.server.requests_for(where)] == [206, 200]


@pytest.mark.parametrize("declared", [True, False])
def test_symlink_partial_with_forged_parallel_segments(
    env: Env, victim: Path, monkeypatch: pytest.MonkeyPatch, declared: bool
) -> None:
    """The same attack against the parallel resume, whose record lists segments to fill in
    with ``pwrite``: the planted symlink's target is never written."""
    monkeypatch.setenv("OMNIHUB_PARALLEL_MIN_SIZE", "1")
    monkeypatch.setenv("OMNIHUB_CONNECTIONS", "2")
    data = payload(len(VICTIM), seed=97)
    where = env.publish(FILE, data, etag='"e3"')
    folder = _folder(env)
    (folder / (FILE + ".incomplete")).symlink_to(victim)
    half = len(VICTIM) // 2
    meta = {
        "url": env.server.url + where,
        "etag": '"e3"',
        "last_modified": None,
        "total": len(VICTIM),
        "segments": [[0, half, half], [half, len(VICTIM), 0]],
    }
    (folder / (FILE + ".incomplete.json")).write_text(json.dumps(meta))
    model = entry(data=data) if declared else entry(data=data, declare=False)
    try:
        path = fetch(model)
    except OmnihubError:
        pass
    else:
        assert path.read_bytes() == data
    assert victim.read_bytes() == VICTIM
