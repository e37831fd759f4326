"""Across processes: a fresh-process cache hit, SIGKILL then resume, one download for many,
and a read-only home."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from omnihub.hub import fetch

from tests.runtime.fault_server import Fault
from tests.runtime.helpers import Env, entry, entry_json, payload, run_python, sha256, spawn_fetch

SIZE = 4_000_000

_NO_SOCKETS = """
import socket, sys, json
class _NoSocket(socket.socket):
    def __init__(self, *a, **k):
        raise AssertionError("a socket was opened")
socket.socket = _NoSocket
socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(AssertionError("connect"))
"""


def test_cache_hit_in_a_fresh_process_opens_no_socket_and_imports_nothing_heavy(env: Env) -> None:
    data = payload(10_000)
    env.publish("model.fb", data)
    model = entry(data=data)
    fetch(model)
    code = (
        _NO_SOCKETS
        + f"""
from omnihub.catalog import catalog_from_json
(model,) = catalog_from_json({entry_json(model)!r}).models
from omnihub.hub import fetch
path = fetch(model)
heavy = sorted(m for m in ("requests", "urllib3", "tqdm", "filelock") if m in sys.modules)
print(json.dumps({{"path": str(path), "heavy": heavy}}))
"""
    )
    result = run_python(code)
    assert result == {"path": str(env.home / "samediff" / "model.fb"), "heavy": []}
    assert len(env.server.log) == 1  # only the first, in-process download


def test_offline_miss_in_a_fresh_process_opens_no_socket(env: Env) -> None:
    code = (
        _NO_SOCKETS
        + f"""
from omnihub.catalog import catalog_from_json
from omnihub.errors import OfflineError
(model,) = catalog_from_json({entry_json(entry(data=b"x"))!r}).models
from omnihub.hub import fetch
try:
    fetch(model)
except OfflineError as exc:
    print(json.dumps({{"error": str(exc), "requests": "requests" in sys.modules}}))
"""
    )
    result = run_python(code, env={"OMNIHUB_OFFLINE": "1"})
    assert str(env.home / "samediff" / "model.fb") in result["error"]
    assert result["requests"] is False
    assert env.server.log == []


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_sigkilled_download_resumes_in_the_next_call(env: Env) -> None:
    size = 12_000_000  # the receiver writes whole 4 MiB buffers: stall after two of them
    data = payload(size)
    where = env.publish("model.fb", data)
    never = threading.Event()
    env.server.fault(where, Fault.stall(9_000_000, never))
    model = entry(data=data)
    partial = env.home / "samediff" / "model.fb.incomplete"
    child = spawn_fetch(model)
    try:
        _wait_for(lambda: partial.exists() and partial.stat().st_size >= 8 << 20)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    kept = partial.stat().st_size
    assert not (env.home / "samediff" / "model.fb").exists()
    # The dead child's lock does not block us, and the partial is continued, not restarted.
    assert fetch(model).read_bytes() == data
    resumed = env.server.requests_for(where)[-1]
    assert resumed.status == 206
    assert resumed.range_start == kept
    assert resumed.body_bytes == size - kept


@pytest.mark.slow
def test_eight_processes_share_one_download(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(1_000_000, release))
    model = entry(data=data)
    children = [spawn_fetch(model) for _ in range(8)]
    try:
        _wait_for(lambda: len(env.server.requests_for(where)) >= 1)
        time.sleep(1.0)  # let the other seven reach the lock while the first is stalled
    finally:
        release.set()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert {o["sha256"] for o in outputs} == {sha256(data)}
    assert {o["path"] for o in outputs} == {str(env.home / "samediff" / "model.fb")}
    gets = env.server.requests_for(where)
    assert len(gets) == 1
    assert gets[0].status == 200
    assert gets[0].body_bytes == SIZE


def test_eight_threads_share_one_download(env: Env) -> None:
    data = payload(SIZE)
    where = env.publish("model.fb", data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(1_000_000, release))
    model = entry(data=data)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(fetch(model))) for _ in range(8)]
    for t in threads:
        t.start()
    _wait_for(lambda: len(env.server.requests_for(where)) >= 1)
    time.sleep(0.3)
    release.set()
    for t in threads:
        t.join(60)
    assert len(results) == 8
    assert all(p.read_bytes() == data for p in results)
    assert len(env.server.requests_for(where)) == 1


def _read_only_runner() -> tuple[str, ...]:
    """How to run a child that cannot write to a chmod-ed directory (root ignores modes)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a read-only home")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner")


def _make_read_only(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(dirpath, 0o555)


def test_read_only_home(env: Env) -> None:
    data, other = payload(10_000, seed=1), payload(10_000, seed=2)
    env.publish("model.fb", data)
    env.publish("other.fb", other)
    cached, unrecorded, missing = (
        entry(data=data),
        entry("copy.fb", data=data),
        entry("other.fb", data=other),
    )
    fetch(cached)
    shutil.copy(env.home / "samediff" / "model.fb", env.home / "samediff" / "copy.fb")
    prefix = _read_only_runner()
    _make_read_only(env.home)
    try:
        code = f"""
import json
from omnihub.catalog import catalog_from_json
from omnihub.errors import OmnihubError
from omnihub.hub import fetch
out = {{}}
for text in {[entry_json(m) for m in (cached, unrecorded, missing)]!r}:
    (model,) = catalog_from_json(text).models
    try:
        out[model.file] = str(fetch(model))
    except OmnihubError as exc:
        out[model.file] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""
        result = run_python(code, prefix=prefix)
    finally:
        for dirpath, _, _ in os.walk(env.home):
            os.chmod(dirpath, 0o755)
    assert result["model.fb"] == str(env.home / "samediff" / "model.fb")
    assert result["copy.fb"] == str(env.home / "samediff" / "copy.fb")  # verified by rehash
    assert result["other.fb"].startswith("DownloadError")
    assert "is OMNIHUB_HOME=" in result["other.fb"]
    assert "writable" in result["other.fb"]
    assert str(env.home / "samediff" / "other.fb") in result["other.fb"]
    assert len(env.server.requests_for("/zoo/samediff/other.fb")) == 0
    assert not (env.home / "samediff" / "copy.fb.omnihub.json").exists()  # nothing was written


_WAITER = """
import fcntl, json, sys
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry

tries = []
def _audit(event, args):
    # A second non-blocking try: this process found the lock held and is now polling.
    if event == "fcntl.flock" and args[1] & fcntl.LOCK_NB:
        tries.append(1)
        if len(tries) == 2:
            print("waiting", flush=True)

sys.addaudithook(_audit)
model = ModelEntry(**{fields!r}, framework=Framework.SAMEDIFF,
                   model_type=ModelType.SAMEDIFF_PIPELINE, format=Format.RAW)
from omnihub.hub import fetch
path = fetch(model)
heavy = sorted(m for m in ("requests", "urllib3", "tqdm") if m in sys.modules)
print(json.dumps({{"path": str(path), "heavy": heavy}}))
"""


def test_a_waiting_process_imports_no_http_library(env: Env) -> None:
    """Waiters are cheap: N processes starting at once on a small machine pay for one download."""
    import subprocess
    import sys

    from omnihub.cache import Record, write_record
    from omnihub.locking import target_lock

    from tests.runtime.helpers import REPO, child_env

    data = payload(10_000)
    model = entry(data=data)
    target = env.home / "samediff" / "model.fb"
    target.parent.mkdir(parents=True)
    fields = {
        k: getattr(model, k)
        for k in ("name", "python_name", "namespace", "package", "documentation", "file")
    }
    fields |= {"sha256": model.sha256, "size": model.size}
    with target_lock(target) as held:
        assert held
        child = subprocess.Popen(
            [sys.executable, "-c", _WAITER.format(fields=fields)],
            cwd=REPO,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting", child.stderr
        # Publish as the downloading process would, then let go of the lock.
        target.write_bytes(data)
        write_record(target, Record(len(data), target.stat().st_mtime_ns, sha256(data)))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"path": str(target), "heavy": []}
    assert env.server.log == []  # the waiter never downloaded
