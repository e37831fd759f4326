"""The fault matrix across processes and disks: SIGKILL at random points, 16 processes at
once, stale locks, a full disk (a real small tmpfs), a read-only home (a real read-only
mount) and offline mode with every socket call trapped.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from omnihub.cache import read_record
from omnihub.cache_admin import verify
from omnihub.errors import OfflineError, OmnihubError
from omnihub.hub import fetch

from tests.reliability._support import HostServer, run_in_mount_namespace
from tests.runtime.fault_server import Fault
from tests.runtime.helpers import (
    Env,
    child_env,
    entry,
    entry_json,
    payload,
    run_python,
    sha256,
    spawn_fetch,
)

FILE = "model.fb"


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _assert_final_is_absent_or_exact(final: Path, data: bytes) -> None:
    if final.exists():
        assert sha256(final.read_bytes()) == sha256(data)


# -- SIGKILL at random points ----------------------------------------------------------------------


def test_sigkill_at_random_points_never_leaves_a_bad_file(env: Env) -> None:
    """Kill fetching children at seeded random moments -- during start-up, the request, the
    body, verification or publishing. After every kill the final path is empty or exact, and
    a later call completes and verifies."""
    rng = random.Random(6)
    size = 6_000_000
    data = payload(size, seed=60)
    where = env.publish(FILE, data)
    model = entry(data=data)
    final = env.home / "samediff" / FILE
    server = env.server
    assert isinstance(server, HostServer)
    for round_ in range(6):
        release = threading.Event()
        stalled = round_ % 2 == 0
        if stalled:  # hold the body at a random byte so the kill lands mid-transfer
            server.fault(where, Fault.stall(rng.randrange(1, size), release))
        seen = len(server.requests_for(where))
        child = spawn_fetch(model)
        try:
            if stalled:
                _wait_for(
                    lambda seen=seen, child=child: (
                        len(server.requests_for(where)) > seen or child.poll() is not None
                    )
                )
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            release.set()
        server.clear_faults()
        _assert_final_is_absent_or_exact(final, data)
        if final.exists() and round_ % 3 == 2:
            final.unlink()  # start the next round from a cache miss again
    path = fetch(model)
    assert path.read_bytes() == data
    (result,) = verify(home=env.home)
    assert result.ok, result.message
    assert not final.with_name(FILE + ".incomplete").exists()


def test_sigkill_after_the_whole_body_arrived_keeps_it_for_the_next_call(env: Env) -> None:
    """A child killed while the complete body is on disk (stalled at the very last byte)."""
    size = 9_000_000  # whole 4 MiB buffers hit the disk before the stall
    data = payload(size, seed=61)
    where = env.publish(FILE, data)
    never = threading.Event()
    env.server.fault(where, Fault.stall(size - 1, never))
    model = entry(data=data)
    partial = env.home / "samediff" / (FILE + ".incomplete")
    child = spawn_fetch(model)
    try:
        _wait_for(lambda: partial.exists() and partial.stat().st_size >= 8 << 20)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert not (env.home / "samediff" / FILE).exists()
    assert fetch(model).read_bytes() == data
    last = env.server.requests_for(where)[-1]
    assert last.status == 206
    assert last.range_start is not None
    assert last.range_start >= 8 << 20  # the bytes already on disk were kept
    assert last.body_bytes == size - last.range_start


# -- many processes at once ------------------------------------------------------------------------


def test_sixteen_processes_share_one_download(env: Env) -> None:
    size = 4_000_000
    data = payload(size, seed=62)
    where = env.publish(FILE, data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(500_000, release))
    model = entry(data=data)
    children = [spawn_fetch(model) for _ in range(16)]
    try:
        _wait_for(lambda: len(env.server.requests_for(where)) >= 1, timeout=60)
        time.sleep(0.5)  # not a correctness condition: late arrivals simply hit the cache
    finally:
        release.set()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert {o["sha256"] for o in outputs} == {sha256(data)}
    assert {o["path"] for o in outputs} == {str(env.home / "samediff" / FILE)}
    (only,) = env.server.requests_for(where)
    assert (only.status, only.body_bytes) == (200, size)


def _holder_of(children: list[subprocess.Popen[str]], partial: Path) -> subprocess.Popen[str]:
    """The child that has ``partial`` open (the one downloading), found through /proc."""
    for child in children:
        try:
            fds = os.listdir(f"/proc/{child.pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{child.pid}/fd/{fd}") == str(partial):
                    return child
            except OSError:
                continue
    raise AssertionError("no child has the partial file open")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to find the holder")
def test_waiters_take_over_when_the_downloading_process_is_killed(env: Env) -> None:
    """Six processes want one model; the one downloading is SIGKILLed mid-body. Another
    takes the lock, resumes from the kept bytes, and every survivor gets the exact file."""
    size = 12_000_000
    data = payload(size, seed=77)
    where = env.publish(FILE, data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(9_000_000, release))
    model = entry(data=data)
    partial = env.home / "samediff" / (FILE + ".incomplete")
    children = [spawn_fetch(model) for _ in range(6)]
    try:
        _wait_for(lambda: partial.exists() and partial.stat().st_size >= 8 << 20, timeout=60)
        holder = _holder_of(children, partial)
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    finally:
        release.set()
    survivors = [c for c in children if c is not holder]
    for child in survivors:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["sha256"] == sha256(data)
    _killed, second = env.server.requests_for(where)  # the killed one, then one resume
    assert second.status == 206
    assert second.range_start is not None
    assert second.range_start >= 8 << 20
    assert second.body_bytes == size - second.range_start


# -- stale locks -----------------------------------------------------------------------------------

_HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1], thread_local=False)
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_lock_of_a_killed_process_does_not_block(env: Env) -> None:
    data = payload(10_000, seed=63)
    env.publish(FILE, data)
    lock = env.home / "samediff" / (FILE + ".lock")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    assert lock.exists()  # left behind by the dead process
    done: list[Path] = []
    worker = threading.Thread(target=lambda: done.append(fetch(entry(data=data))))
    worker.start()
    worker.join(60)
    assert done, "fetch blocked on a dead process's lock"
    assert done[0].read_bytes() == data


def test_leftover_lock_and_sidecar_junk_from_a_crash_is_harmless(env: Env) -> None:
    """What a crash (or another tool) may leave: a lock file with junk in it, a stale record
    temp file, an unreadable partial meta."""
    data = payload(10_000, seed=64)
    env.publish(FILE, data)
    folder = env.home / "samediff"
    folder.mkdir(parents=True)
    (folder / (FILE + ".lock")).write_text("pid 99999999\n")
    (folder / (FILE + ".omnihub.json.12345.tmp")).write_text("{")
    (folder / (FILE + ".incomplete")).write_bytes(b"garbage")
    (folder / (FILE + ".incomplete.json")).write_text("not json")
    path = fetch(entry(data=data))
    assert path.read_bytes() == data


# -- a full disk (real ENOSPC on a small tmpfs) ----------------------------------------------------

_FETCH_ON_SMALL_DISK = """
import hashlib, json, os, sys
from omnihub.catalog import catalog_from_json
from omnihub.errors import OmnihubError
from omnihub.hub import fetch
home = os.environ["OMNIHUB_HOME"]
out = {}
for name, text, force in json.loads(sys.argv[1]):
    (model,) = catalog_from_json(text).models
    try:
        path = fetch(model, force_download=force)
        out[name] = "ok " + hashlib.sha256(path.read_bytes()).hexdigest()
    except OmnihubError as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
    walk = [os.path.join(d, f) for d, _, fs in os.walk(home) for f in fs]
    out[name + " files"] = sorted(os.path.relpath(p, home) for p in walk)
st = os.statvfs(home)
out["free"] = st.f_bavail * st.f_frsize
out["total"] = st.f_blocks * st.f_frsize
print(json.dumps(out))
"""


def _on_tmpfs(env: Env, size: str, steps: list[tuple[str, str, bool]]) -> dict[str, object]:
    env.home.mkdir(parents=True, exist_ok=True)
    setup = f"mount -t tmpfs -o size={size} omnihub-test {shlex.quote(str(env.home))}"
    code = _FETCH_ON_SMALL_DISK.replace("sys.argv[1]", repr(json.dumps(steps)))
    return run_in_mount_namespace(setup, code, env={"OMNIHUB_HOME": str(env.home)})


def test_full_disk_is_a_clear_error_and_leaves_nothing(env: Env) -> None:
    data = payload(3_000_000, seed=65)
    env.publish(FILE, data)
    result = _on_tmpfs(env, "1m", [("big", entry_json(entry(data=data)), False)])
    message = str(result["big"])
    assert message.startswith("WriteError: "), message
    assert "No space left on device" in message
    assert "model.fb.incomplete" in message
    assert result["big files"] == ["samediff/model.fb.lock"]  # no partial, no final file
    assert result["free"] == result["total"]  # every byte given back


def test_full_disk_during_force_download_keeps_the_good_copy(env: Env) -> None:
    data = payload(2_000_000, seed=66)
    env.publish(FILE, data)
    model = entry_json(entry(data=data))
    result = _on_tmpfs(
        env,
        "3m",
        [("first", model, False), ("forced", model, True), ("again", model, False)],
    )
    assert result["first"] == "ok " + sha256(data)
    assert str(result["forced"]).startswith("WriteError: ")
    assert "No space left on device" in str(result["forced"])
    assert result["again"] == "ok " + sha256(data)  # still cached and valid
    assert "samediff/model.fb.incomplete" not in result["forced files"]  # type: ignore[operator]
    assert len(env.server.requests_for("/zoo/samediff/model.fb")) == 2  # no third download


# -- a read-only home (a read-only bind mount: root cannot write either) ---------------------------

_FETCH_EACH = """
import json, os, socket
from omnihub.catalog import catalog_from_json
from omnihub.errors import OmnihubError
from omnihub.hub import fetch
out = {}
for text in %r:
    (model,) = catalog_from_json(text).models
    try:
        out[model.file] = "ok " + str(fetch(model))
    except OmnihubError as exc:
        out[model.file] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def test_read_only_mounted_home(env: Env) -> None:
    good, other, bad = payload(10_000, seed=67), payload(10_000, seed=68), payload(10_000, seed=69)
    env.publish(FILE, good)
    env.publish("other.fb", other)
    env.publish("bad.fb", bad)
    cached, missing, corrupt = (
        entry(data=good),
        entry("other.fb", data=other),
        entry("bad.fb", data=bad),
    )
    fetch(cached)
    fetch(corrupt)
    bad_path = env.home / "samediff" / "bad.fb"
    bad_path.write_bytes(b"X" + bad[1:])
    before = {p: p.read_bytes() for p in env.home.rglob("*") if p.is_file()}
    home = shlex.quote(str(env.home))
    setup = f"mount --bind {home} {home}\nmount -o remount,bind,ro {home}"
    code = _FETCH_EACH % [entry_json(m) for m in (cached, missing, corrupt)]
    result = run_in_mount_namespace(setup, code)
    assert result[FILE] == f"ok {env.home / 'samediff' / FILE}"
    for name in ("other.fb", "bad.fb"):
        message = result[name]
        assert message.startswith("DownloadError: "), message
        assert str(env.home / "samediff" / name) in message
        assert "writable" in message
    assert {p: p.read_bytes() for p in env.home.rglob("*") if p.is_file()} == before
    assert env.server.requests_for("/zoo/samediff/other.fb") == []
    assert len(env.server.requests_for("/zoo/samediff/bad.fb")) == 1  # the set-up download


# -- a disk that loses writes (a real write-back failure on a loop device) -----------------------

_KEEP_WARNINGS = """
import hashlib, json, logging, os
from omnihub.cache import read_record
from omnihub.catalog import catalog_from_json
from omnihub.hub import fetch
warnings = []
class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger("omnihub").addHandler(Keep(logging.WARNING))
out = {"warnings": warnings}
"""


def _on_a_failing_disk(env: Env, code: str) -> dict[str, Any]:
    """Run ``code`` (after :data:`_KEEP_WARNINGS`; it prints ``out``) with the home on a disk
    that loses writes: an ext4 image on a loop device whose backing file lives on a 3 MiB
    tmpfs, so write-back of more than that fails for real when the pages are flushed."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("needs mkfs.ext4 (e2fsprogs) to build the failing disk")
    env.home.mkdir(parents=True, exist_ok=True)
    backing = shlex.quote(str(env.home.parent / "backing"))
    home = shlex.quote(str(env.home))
    setup = (
        f"mkdir -p {backing}\n"
        f"mount -t tmpfs -o size=3m omnihub-backing {backing}\n"
        f"truncate -s 64M {backing}/disk.img\n"
        f"mkfs.ext4 -q -F -O ^has_journal {backing}/disk.img\n"
        f"mount -o loop {backing}/disk.img {home}"
    )
    return run_in_mount_namespace(setup, _KEEP_WARNINGS + code, env={"OMNIHUB_HOME": str(env.home)})


def _listing(folder: str) -> str:
    """Child code: ``listing()`` -> ``[names in folder, record sha256 or None]``."""
    return (
        "def listing():\n"
        f"    names = sorted(os.listdir({folder!r}))\n"
        "    record = read_record(Path(folder, 'model.fb'))\n"
        "    return names, None if record is None else record.sha256\n"
    )


def test_a_download_the_disk_fails_to_keep_is_never_published(env: Env) -> None:
    """The fsync before publishing fails for real (a write-back error). Linux then serves the
    page cache's good bytes, so nothing may vouch for them: ``fetch`` raises a WriteError
    naming the disk, and neither the file nor a record is left (only the lock file).
    """
    data = payload(6_000_000, seed=73)
    env.publish(FILE, data)
    folder = str(env.home / "samediff")
    code = (
        "from pathlib import Path\n"
        "from omnihub.errors import WriteError\n"
        f"folder = {folder!r}\n"
        + _listing(folder)
        + f"(model,) = catalog_from_json({entry_json(entry(data=data))!r}).models\n"
        "try:\n"
        "    fetch(model)\n"
        "except WriteError as exc:\n"
        "    out['error'] = str(exc)\n"
        "out['left'] = listing()\n"
        "print(json.dumps(out))\n"
    )
    result = _on_a_failing_disk(env, code)
    assert "the disk failed to keep" in result["error"], result
    assert "nothing was kept" in result["error"]
    assert result["left"] == [[FILE + ".lock"], None]


def test_a_rehashed_file_the_disk_failed_to_keep_is_not_vouched_for(env: Env) -> None:
    """A file put in the cache by someone else (no record: DL4J, a copy) whose write-back
    fails: the rehash finds the page cache's good bytes, and the fsync that would make its
    record true reports the loss. ``verify`` reports it as bad and writes no record.
    """
    data = payload(6_000_000, seed=74)
    source = env.home.parent / "copied.fb"  # outside the failing disk
    source.write_bytes(data)
    folder = str(env.home / "samediff")
    code = (
        "from pathlib import Path\n"
        "from omnihub.cache_admin import verify\n"
        f"folder = {folder!r}\n" + _listing(folder) + "os.makedirs(folder)\n"
        f"with open({str(source)!r}, 'rb') as src:\n"
        "    Path(folder, 'model.fb').write_bytes(src.read())\n"
        "out['verify'] = [[v.ok, v.message] for v in verify()]\n"
        "out['after verify'] = listing()\n"
        "print(json.dumps(out))\n"
    )
    result = _on_a_failing_disk(env, code)
    [[ok, message]] = result["verify"]
    assert ok is False
    assert message.startswith("the disk failed to keep it (fsync: "), message
    assert result["after verify"] == [[FILE], None]


_TRAP_SOCKETS = """
import json, socket
attempts = []
def _trap(name):
    def trapped(*args, **kwargs):
        attempts.append(name)
        raise OSError("socket use is forbidden in this test: " + name)
    return trapped
socket.socket.connect = _trap("connect")
socket.socket.connect_ex = _trap("connect_ex")
socket.socket.sendto = _trap("sendto")
socket.create_connection = _trap("create_connection")
socket.getaddrinfo = _trap("getaddrinfo")
"""


def test_offline_mode_opens_no_socket_in_any_case(env: Env) -> None:
    good, corrupt, missing = payload(5000, seed=70), payload(5000, seed=71), payload(5000, seed=72)
    for name, data in (("good.fb", good), ("corrupt.fb", corrupt)):
        env.publish(name, data)
        fetch(entry(name, data=data))
    (env.home / "samediff" / "corrupt.fb").write_bytes(b"Y" * 5000)
    env.publish("missing.fb", missing)
    env.publish("partial.fb", missing)
    (env.home / "samediff" / "partial.fb.incomplete").write_bytes(missing[:100])
    hf = entry("hf.gguf", data=missing, repository="huggingface", hugging_face_id="o/r")
    cases = [
        (entry("good.fb", data=good), False),
        (entry("good.fb", data=good), True),  # force_download while offline
        (entry("corrupt.fb", data=corrupt), False),
        (entry("missing.fb", data=missing), False),
        (entry("partial.fb", data=missing), False),
        (hf, False),
    ]
    served = len(env.server.log)
    code = (
        _TRAP_SOCKETS
        + f"""
import sys
from omnihub.catalog import catalog_from_json
from omnihub.errors import OmnihubError
from omnihub.hub import fetch
out = []
for text, force in {[(entry_json(m), f) for m, f in cases]!r}:
    (model,) = catalog_from_json(text).models
    try:
        out.append("ok " + str(fetch(model, force_download=force)))
    except OmnihubError as exc:
        out.append(type(exc).__name__ + ": " + str(exc))
print(json.dumps({{"out": out, "attempts": attempts, "requests": "requests" in sys.modules}}))
"""
    )
    result = run_python(code, env={"OMNIHUB_OFFLINE": "1"})
    assert result["attempts"] == []
    assert result["requests"] is False
    assert len(env.server.log) == served
    folder = env.home / "samediff"
    ok, forced, bad, absent, partial, hugging = result["out"]
    assert ok == f"ok {folder / 'good.fb'}"
    assert forced.startswith("OfflineError: ")
    assert "OMNIHUB_OFFLINE=1" in forced
    for message, name in ((bad, "corrupt.fb"), (absent, "missing.fb"), (partial, "partial.fb")):
        assert message.startswith("OfflineError: "), message
        assert str(folder / name) in message
    assert hugging.startswith("OfflineError: ")
    assert (folder / "good.fb").read_bytes() == good


# -- a corrupt cache repairs itself ----------------------------------------------------------------


def _flip_keep_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    "damage",
    [
        "truncate",
        "append",
        "flip",
        "empty",
        "record-deleted-and-flip",
        "record-garbage",
        "record-lies-about-sha",
    ],
)
def test_corrupt_cached_file_is_repaired_on_the_next_call(
    env: Env, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = payload(200_000, seed=73)
    where = env.publish(FILE, data)
    model = entry(data=data)
    path = fetch(model)
    record = path.with_name(FILE + ".omnihub.json")
    if damage == "truncate":
        path.write_bytes(data[:-1])
    elif damage == "append":
        path.write_bytes(data + b"\0")
    elif damage == "flip":
        path.write_bytes(b"\0" + data[1:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "record-deleted-and-flip":
        record.unlink()
        path.write_bytes(data[:-1] + b"\0")
    elif damage == "record-garbage":
        record.write_text("{{{")
        path.write_bytes(data[:-1] + b"\0")
    else:
        _flip_keep_mtime(path)
        text = json.loads(record.read_text())
        text["sha256"] = "0" * 64
        record.write_text(json.dumps(text))
    assert fetch(model).read_bytes() == data
    assert len(env.server.requests_for(where)) == 2
    assert "corrupt" in caplog.text or damage == "empty"


def test_same_size_corruption_with_forged_mtime_is_caught_by_verify(env: Env) -> None:
    """The cheap hit test trusts size+mtime; a full verify rehashes and repairs."""
    data = payload(200_000, seed=74)
    where = env.publish(FILE, data)
    model = entry(data=data)
    path = fetch(model)
    _flip_keep_mtime(path)
    (result,) = verify(home=env.home, repair=True)
    assert not result.ok
    assert "moved aside" in result.message
    assert fetch(model).read_bytes() == data
    assert len(env.server.requests_for(where)) == 2
    record = read_record(path)
    assert record is not None
    assert record.sha256 == sha256(data)


def test_offline_corrupt_copy_is_reported_as_corrupt(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(5000, seed=75)
    env.publish(FILE, data)
    model = entry(data=data)
    path = fetch(model)
    path.write_bytes(b"Z" * 5000)
    monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="is corrupt"):
        fetch(model)


def test_directory_at_the_cache_path_is_a_typed_error(env: Env) -> None:
    data = payload(5000, seed=76)
    env.publish(FILE, data)
    (env.home / "samediff" / FILE).mkdir(parents=True)
    with pytest.raises(OmnihubError, match=str(env.home / "samediff" / FILE)):
        fetch(entry(data=data))
    assert (env.home / "samediff" / FILE).is_dir()  # not deleted either
