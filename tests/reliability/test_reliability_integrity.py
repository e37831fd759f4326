"""Issue 15, items 4, 10, 11 and 12: what a captive portal, fork(), a broken OMNIHUB_HOME
and out-of-range settings still broke -- against real loopback servers and real processes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub._enums import Format, Framework
from omnihub.cache import Record, is_fresh, read_record, rehash_and_repair, write_record
from omnihub.cli._units import parse_size
from omnihub.config import ENV, Config, resolve
from omnihub.errors import (
    CacheDirectoryError,
    ConfigurationError,
    DownloadError,
    IntegrityError,
)
from omnihub.formats import format_problem
from omnihub.hub import fetch
from omnihub.locking import try_target_lock

from tests.cli.zoo import entry as cli_entry
from tests.cli.zoo import write_catalog, write_zoo_file
from tests.runtime.fault_server import Fault
from tests.runtime.helpers import REPO, Env, child_env, entry, entry_json, payload, sha256

FILE = "model.fb"


def _wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- item 10: a fork()ed child never inherits a download's lock --------------------------

_FORKING_PARENT = """
import json, os, sys, threading, time
from omnihub.catalog import catalog_from_json
from omnihub.hub import fetch
model = catalog_from_json(sys.argv[1]).models[0]
threading.Thread(target=fetch, args=(model,), daemon=True).start()
partial = sys.argv[2]
while not os.path.exists(partial):  # the lock is held once the partial exists
    time.sleep(0.01)
pid = os.fork()  # a DataLoader worker: forked while the download holds the lock
if pid == 0:
    time.sleep(120)
    os._exit(0)
print(json.dumps({"child": pid}), flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_keep_the_download_lock_after_the_parent_dies(
    env: Env,
) -> None:
    """A process forks (a DataLoader worker) while its download thread holds the lock, then is
    SIGKILLed. The lock must be free at once for everyone else, although the unrelated child
    (which inherited the descriptors) lives on; another process then gets the file."""
    data = payload(2_000_000, seed=151)
    where = env.publish(FILE, data)
    release = threading.Event()
    env.server.fault(where, Fault.stall(500_000, release))
    model = entry(data=data)
    target = env.home / "samediff" / FILE
    parent = subprocess.Popen(
        [sys.executable, "-c", _FORKING_PARENT, entry_json(model), f"{target}.incomplete"],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = json.loads(parent.stdout.readline())["child"]
        with try_target_lock(target) as free:
            assert not free, "the parent's download should hold the lock"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        release.set()
        os.kill(child, 0)  # the child is alive and still holds the inherited descriptors
        deadline = time.monotonic() + 5
        while True:
            with try_target_lock(target) as free:
                if free:
                    break
            assert time.monotonic() < deadline, (
                "the lock is still held after its owner died: the forked child inherited it"
            )
            time.sleep(0.05)
    finally:
        release.set()
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


# -- item 4: a captive portal, an empty body or an LFS pointer is never pinned ----------

_PORTAL = b"<!DOCTYPE html>\n<html><head><title>Sign in to Hotel WiFi</title></head></html>\n"
_LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 9\n"


def _flatbuffer(size: int, seed: int) -> bytes:
    """A minimal well-formed FlatBuffers file: root table at 8, its vtable at 4, then data."""
    root = struct.pack("<I", 8) + struct.pack("<HH", 4, 4) + struct.pack("<i", 4)
    return root + payload(size - len(root), seed=seed)


def _onnx_file() -> bytes:
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    node = helper.make_node("Relu", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]))
    data: bytes = model.SerializeToString()
    return data


def _safetensors_file() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(8)


def _zip_file() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("configuration.json", "{}")
    return buf.getvalue()


_VALID: dict[str, object] = {
    "samediff": lambda: _flatbuffer(4096, 1),
    "dl4j": _zip_file,
    "onnx": _onnx_file,
    "gguf": lambda: b"GGUF" + struct.pack("<IQQ", 3, 0, 0),
    "safetensors": _safetensors_file,
    "raw": lambda: payload(100, seed=2),
}


@pytest.mark.parametrize("fmt", sorted(_VALID))
def test_every_format_accepts_its_files_and_refuses_a_portal_page(fmt: str, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(_VALID[fmt]())  # type: ignore[operator]
    assert format_problem(good, fmt) is None
    for bad, said in ((_PORTAL, "HTML page"), (b"", "empty"), (_LFS, "Git LFS pointer")):
        path = tmp_path / "bad"
        path.write_bytes(bad)
        problem = format_problem(path, fmt)
        assert problem is not None, (fmt, bad[:20])
        assert said in problem, (fmt, bad[:20], problem)


@given(junk=st.binary(max_size=300), fmt=st.sampled_from(sorted(_VALID)), cut=st.floats(0, 1))
@settings(max_examples=300, deadline=None)
def test_the_checks_never_raise_and_a_cut_short_file_is_refused(
    junk: bytes, fmt: str, cut: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Arbitrary bytes get an answer, never an exception. A zip, ONNX or SafeTensors file cut
    short anywhere is refused: their checks cover the whole file (FlatBuffers and GGUF checks
    read only the root and the magic; raw has no structure)."""
    path = tmp_path_factory.mktemp("f") / "x"
    path.write_bytes(junk)
    format_problem(path, fmt)
    whole: bytes = _VALID[fmt]()  # type: ignore[operator]
    path.write_bytes(whole[: int(cut * (len(whole) - 1))])
    if fmt in ("dl4j", "onnx", "safetensors"):
        assert format_problem(path, fmt) is not None


@pytest.mark.parametrize(
    "body", [_PORTAL, b"", _LFS], ids=["captive-portal", "empty-body", "lfs-pointer"]
)
def test_a_portal_page_is_never_pinned_on_first_use(env: Env, body: bytes) -> None:
    """A spec without sha256 behind a captive portal: a clear error, nothing cached (no
    file, record or partial); once the network is real, the model is fetched and pinned."""
    good = _flatbuffer(50_000, 3)
    where = env.publish(FILE, good)
    env.server.fault(where, Fault.body(body))
    model = entry(data=good, declare=False, format=Format.SAMEDIFF)
    with pytest.raises(DownloadError) as info:
        fetch(model)
    message = str(info.value)
    assert "nothing was cached" in message
    assert where in message
    folder = env.home / "samediff"
    assert sorted(p.name for p in folder.iterdir()) == [FILE + ".lock"]
    path = fetch(model)
    assert path.read_bytes() == good
    record = read_record(path)
    assert record is not None
    assert (record.origin, record.sha256) == ("first-use", sha256(good))


def test_a_portal_on_the_first_mirror_falls_through_to_the_next(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _flatbuffer(20_000, 4)
    env.server.add(f"/portal/samediff/{FILE}", _PORTAL, content_type="text/html")
    env.publish(FILE, good)
    monkeypatch.setenv("OMNIHUB_URL", f"{env.server.url}/portal {env.base}")
    path = fetch(entry(data=good, declare=False, format=Format.SAMEDIFF))
    assert path.read_bytes() == good


def test_force_download_replaces_a_first_use_pin_but_never_a_declared_hash(env: Env) -> None:
    old, new = _flatbuffer(30_000, 5), _flatbuffer(30_000, 6)
    env.publish(FILE, old)
    trusted = entry(data=old, declare=False, format=Format.SAMEDIFF)
    path = fetch(trusted)
    env.publish(FILE, new)  # upstream replaced the file (or the first pin was bad)
    assert fetch(trusted).read_bytes() == old  # a hit: the pinned copy
    assert fetch(trusted, force_download=True).read_bytes() == new
    record = read_record(path)
    assert record is not None
    assert (record.origin, record.sha256) == ("first-use", sha256(new))
    declared = entry(data=old, format=Format.SAMEDIFF)  # the spec pins the old file
    path.unlink()
    env.publish(FILE, old)
    fetch(declared)
    env.publish(FILE, new)
    with pytest.raises(IntegrityError):
        fetch(declared, force_download=True)
    assert path.read_bytes() == old


# -- item 11: a home that is a file, a dangling symlink; a symlinked framework directory ---


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnihub", *args],
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _broken_home(kind: str, tmp_path: Path) -> tuple[Path, str]:
    tmp_path.mkdir(exist_ok=True)
    home = tmp_path / "home"
    if kind == "file":
        home.write_text("not a directory\n")
        return home, "is a file, not a directory"
    if kind == "inside-a-file":
        (tmp_path / "plain").write_text("x")
        return tmp_path / "plain" / "home", "plain is a file, not a directory"
    home.symlink_to(tmp_path / "gone")
    return home, "which does not exist"


@pytest.mark.parametrize("kind", ["file", "inside-a-file", "dangling-symlink"])
def test_a_broken_home_is_a_clear_typed_error_in_fetch(
    env: Env, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, said = _broken_home(kind, tmp_path / "b")
    monkeypatch.setenv("OMNIHUB_HOME", str(home))
    data = _flatbuffer(1000, 7)
    env.publish(FILE, data)
    for offline in ("0", "1"):
        monkeypatch.setenv("OMNIHUB_OFFLINE", offline)
        with pytest.raises(CacheDirectoryError) as info:
            fetch(entry(data=data))
        message = str(info.value)
        assert said in message
        assert "OMNIHUB_HOME" in message
        assert str(home) in message


@pytest.mark.parametrize("kind", ["file", "dangling-symlink"])
@pytest.mark.parametrize("command", [("cache", "ls"), ("verify",), ("cache", "prune")])
def test_cache_commands_report_a_broken_home_and_exit_1(
    kind: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    home, said = _broken_home(kind, tmp_path)
    done = _cli(*command, env={"OMNIHUB_HOME": str(home), "OMNIHUB_OFFLINE": "1"})
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "CacheDirectoryError" in lines[0]
    assert said in lines[0]
    assert "empty" not in done.stderr + done.stdout


def test_cache_commands_follow_a_symlinked_framework_directory(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user moved samediff/ to a bigger disk and linked it: ls, verify and prune see it."""
    data = _flatbuffer(5000, 8)
    env.publish(FILE, data)
    path = fetch(entry(data=data))
    elsewhere = tmp_path / "big-disk" / "samediff"
    elsewhere.parent.mkdir()
    os.replace(path.parent, elsewhere)
    path.parent.symlink_to(elsewhere)
    (elsewhere / (FILE + ".incomplete")).write_bytes(b"leftover")
    cli_env = {"OMNIHUB_HOME": str(env.home), "OMNIHUB_OFFLINE": "1"}
    listed = _cli("cache", "ls", "--json", env=cli_env)
    assert [row["file"] for row in json.loads(listed.stdout)] == [FILE], listed
    verified = _cli("verify", "--json", env=cli_env)
    assert [row["ok"] for row in json.loads(verified.stdout)] == [True], verified
    pruned = _cli("cache", "prune", "--max-size", "0", "--json", env=cli_env)
    removed = {Path(row["path"]).name for row in json.loads(pruned.stdout)["removed"]}
    assert removed == {FILE, FILE + ".incomplete", FILE + ".omnihub.json"}, pruned
    assert not (elsewhere / FILE).exists()


# -- item 12: out-of-range settings and options: one line naming them, documented exit code --

_SETTINGS = ["OMNIHUB_URL", "HF_ENDPOINT", *(v for names in ENV.values() for v in names)]


@given(
    name=st.sampled_from(sorted(set(_SETTINGS))),
    text=st.one_of(
        st.sampled_from(["inf", "-inf", "nan", "1e999", "1e308", "-1", "99999999999999999999"]),
        st.sampled_from(["http://h:99999/", "https://[::1/zoo", "http://h:abc/", "https://:1/"]),
        st.text(min_size=1, max_size=40).filter(lambda t: "\0" not in t),
    ),
)
@settings(max_examples=400, deadline=None)
def test_any_setting_text_resolves_or_is_a_configuration_error(name: str, text: str) -> None:
    """Whatever a variable holds: a Config whose numbers are finite and whose URLs have a
    usable port, or a ConfigurationError naming the variable -- never another exception."""
    saved = os.environ.get(name)
    os.environ[name] = text
    try:
        cfg: Config | ConfigurationError = resolve()
    except ConfigurationError as exc:
        cfg = exc
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved
    if isinstance(cfg, ConfigurationError):
        assert name in str(cfg)
        return
    for field in ("connect_timeout", "read_timeout", "backoff", "backoff_max", "retry_after_max"):
        assert math.isfinite(getattr(cfg, field))
    for url in (*cfg.urls, cfg.hf_endpoint):
        port = urlsplit(url).port
        assert port is None or 1 <= port <= 65535


@given(
    text=st.one_of(
        st.sampled_from(["1e300TB", "1e309", "inf", "nan", "9e18GiB", "-1KB"]),
        st.builds("{}{}".format, st.floats(), st.sampled_from(["", "KB", "TiB"])),
        st.text(max_size=30),
    )
)
@settings(max_examples=300, deadline=None)
def test_any_size_text_is_bytes_or_a_value_error(text: str) -> None:
    try:
        size: int | str = parse_size(text)
    except ValueError as exc:
        size = str(exc)
    if isinstance(size, str):
        assert "expected a number of bytes" in size
    else:
        assert 0 <= size <= 2**63 - 1


@pytest.fixture(scope="module")
def a_model_name() -> str:
    listed = _cli("list", "--json")
    names = [row["qualified_name"] for row in json.loads(listed.stdout)]
    if not names:
        pytest.skip("no generated catalogue installed")
    return str(names[0])


_BAD_ENVIRONMENT = [
    ("OMNIHUB_URL", "http://127.0.0.1:99999/zoo", "port 1-65535"),
    ("OMNIHUB_URL", "http://127.0.0.1:abc/zoo", "a bad port"),
    ("OMNIHUB_URL", "https://[::1/zoo", "a malformed host"),
    ("OMNIHUB_URL", "https://user:se/cret@127.0.0.1:7x/zoo", "a bad port"),
    ("OMNIHUB_READ_TIMEOUT", "inf", "finite"),
    ("OMNIHUB_READ_TIMEOUT", "1e999", "finite"),
    ("OMNIHUB_CONNECT_TIMEOUT", "1e300", "seconds from 0 to 1e+07"),
    ("OMNIHUB_RETRIES", "1e999", "non-negative int"),
    ("OMNIHUB_CONNECTIONS", "100000", "connections from 1 to 256"),
    ("OMNIHUB_RATE_WINDOW", "1e999", "finite"),
    ("OMNIHUB_ATTEMPT_DEADLINE", "1e300", "seconds from 0 to 1e+07"),
    ("OMNIHUB_MIN_RATE", "-5", "non-negative"),
    ("OMNIHUB_MAX_SIZE", "1e30", "non-negative int"),
    ("OMNIHUB_MAX_SIZE", str(2**64), "bytes from 0 to"),
]


@pytest.mark.parametrize(("variable", "value", "said"), _BAD_ENVIRONMENT)
def test_bad_environment_is_one_line_in_download_and_doctor(
    variable: str, value: str, said: str, a_model_name: str, tmp_path: Path
) -> None:
    env = {"OMNIHUB_HOME": str(tmp_path / "home"), variable: value}
    download = _cli("download", a_model_name, env=env)
    assert download.returncode == 1, download
    lines = download.stderr.strip().splitlines()
    assert len(lines) == 1, download.stderr
    assert f"ConfigurationError: {variable}=" in lines[0]
    assert said in lines[0]
    assert "cret" not in download.stderr  # a password is never echoed
    doctor = _cli("doctor", "--no-network", env=env)
    assert doctor.returncode == 4, doctor  # doctor ran and found a problem
    assert "Traceback" not in doctor.stderr
    assert variable in doctor.stdout
    assert said in doctor.stdout


@pytest.mark.parametrize("size", ["1e300TB", "1e400", "inf", "nan", "-5MB", "9e18GiB"])
def test_an_out_of_range_max_size_is_a_usage_error(size: str, tmp_path: Path) -> None:
    done = _cli("cache", "prune", f"--max-size={size}", env={"OMNIHUB_HOME": str(tmp_path)})
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "--max-size" in last
    assert "from 0 to 8 EiB" in last


def test_verify_unpins_a_portal_page_an_older_version_trusted_on_first_use(
    tmp_path: Path,
) -> None:
    """A cache filled by an older omnihub behind a captive portal: the HTML page is cached with
    a first-use record. ``verify --no-repair`` reports it BAD (exit 4); ``verify`` moves it
    aside, drops the pin and fetches the real model from the zoo."""
    site, zoo, home = tmp_path / "site", tmp_path / "zoo", tmp_path / "home"
    good = _flatbuffer(3000, 9)
    model = cli_entry("portal_victim", "zoo", framework=Framework.SAMEDIFF, file="pv.fb")
    model = attrs.evolve(model, format=Format.SAMEDIFF)
    write_zoo_file(zoo, model, good)
    write_catalog(site, "zoo", [model])
    cached = home / "samediff" / "pv.fb"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(_PORTAL)
    mtime = cached.stat().st_mtime_ns
    write_record(cached, Record(len(_PORTAL), mtime, sha256(_PORTAL), "first-use"))
    env = {"PYTHONPATH": str(site), "OMNIHUB_HOME": str(home), "OMNIHUB_URL": zoo.as_uri()}
    checked = _cli("verify", "--no-repair", env=env)
    assert checked.returncode == 4, checked
    assert "BAD" in checked.stdout
    assert "HTML page" in checked.stdout
    repaired = _cli("verify", env=env)
    assert repaired.returncode == 0, repaired
    assert cached.read_bytes() == good
    record = read_record(cached)
    assert record is not None
    assert record.sha256 == sha256(good)


# -- publish: a SIGKILL before any of its steps leaves a cache whose hit test tells the truth --

_PUBLISH_KILLED = """
import os, signal, sys
from pathlib import Path
from omnihub.cache import publish
source, target, kill_at, sha = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
steps = []
def hook(event, args):
    if event in ("open", "os.rename"):  # every open and rename publish makes, in order
        if len(steps) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        steps.append(event)
sys.addaudithook(hook)
publish(source, target, sha256=sha, origin="first-use", url=None)
print(" ".join(steps))
"""
#: open the data to fsync it, rename it, create the record's temporary file, rename it,
#: open the directory to fsync it.
_PUBLISH_STEPS = "open os.rename open os.rename open"


@pytest.mark.parametrize("kill_at", range(len(_PUBLISH_STEPS.split()) + 1))
def test_publish_killed_before_any_step_never_leaves_a_lying_hit(
    tmp_path: Path, kill_at: int
) -> None:
    """Replace a first-use pin's file A with B of the same size (the hardest case for the
    size+mtime hit test); SIGKILL the publisher before step ``kill_at``. The cache holds A
    or B whole, and a hit is claimed only for content whose sha256 its record names."""
    target = tmp_path / FILE
    old, new = payload(4096, seed=1), payload(4096, seed=2)
    target.write_bytes(old)
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    write_record(target, Record(len(old), target.stat().st_mtime_ns, sha256(old), "first-use"))
    source = target.with_name(FILE + ".incomplete")
    source.write_bytes(new)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _PUBLISH_KILLED,
            str(source),
            str(target),
            str(kill_at),
            sha256(new),
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    done = kill_at == len(_PUBLISH_STEPS.split())
    assert child.returncode == (0 if done else -signal.SIGKILL), child.stderr
    if done:
        assert child.stdout.split() == _PUBLISH_STEPS.split()  # the test sees every step
    content = target.read_bytes()
    assert content in (old, new)
    record = read_record(target)
    assert record is not None
    if is_fresh(target, None, None):
        assert sha256(content) == record.sha256
    assert is_fresh(target, sha256(new), len(new)) == (kill_at >= 4)  # the new record is in
    check = rehash_and_repair(target, repair=False)
    assert check.ok == (sha256(content) == record.sha256)
