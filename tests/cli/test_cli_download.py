"""`omnihub download` through a subprocess, from a file:// zoo and a local HTTP server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from .conftest import Zoo


def test_download_fetches_verifies_and_caches(zoo: Zoo) -> None:
    result = zoo.cli.run("download", "alpha", "zoo.beta")
    assert result.returncode == 0, result.stderr
    for name in ("alpha", "beta"):
        assert zoo.cached(name).read_bytes() == zoo.contents[name]
        assert f"zoo.{name}  {zoo.cached(name)}" in result.stdout
    assert not zoo.cached("gamma").exists()
    assert list(zoo.cli.home.rglob("*.incomplete")) == []


def test_second_download_is_a_cache_hit(zoo: Zoo) -> None:
    assert zoo.cli.run("download", "gamma").returncode == 0
    before = zoo.cached("gamma").stat().st_mtime_ns
    (zoo.cli.zoo / "samediff" / "gamma.fb").unlink()  # the zoo is no longer needed
    result = zoo.cli.run("download", "gamma")
    assert result.returncode == 0, result.stderr
    assert zoo.cached("gamma").stat().st_mtime_ns == before


def test_globs_expand_and_parallel_jobs(zoo: Zoo) -> None:
    result = zoo.cli.run("download", "zoo.*", "--jobs", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(item["name"] for item in report["downloaded"]) == [
        "zoo.alpha",
        "zoo.beta",
        "zoo.delta",
        "zoo.gamma",
    ]
    assert report["failed"] == []
    for item in report["downloaded"]:
        assert item["size"] == len(zoo.contents[item["name"].split(".")[1]])


def test_corrupt_zoo_file_fails_with_one_line_and_caches_nothing(zoo: Zoo) -> None:
    served = zoo.cli.zoo / "onnx" / "a" / "alpha.bin"
    data = bytearray(served.read_bytes())
    data[100] ^= 0xFF
    served.write_bytes(bytes(data))
    result = zoo.cli.run("download", "alpha", "gamma")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("omnihub: error: zoo.alpha: IntegrityError: ")
    assert hashlib.sha256(bytes(data)).hexdigest() in line
    assert "Traceback" not in result.stderr
    assert not zoo.cached("alpha").exists()
    leftovers = {p.name for p in zoo.cached("alpha").parent.glob("alpha.bin*")}
    assert leftovers <= {"alpha.bin.lock"}  # no partial file, no record
    assert zoo.cached("gamma").read_bytes() == zoo.contents["gamma"]  # the others still come


def test_missing_file_in_zoo_is_not_found(zoo: Zoo) -> None:
    (zoo.cli.zoo / "dl4j" / "beta.zip").unlink()
    result = zoo.cli.run("download", "beta")
    assert result.returncode == 3
    assert "zoo.beta: ModelNotFoundError" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unknown_name_fails_before_downloading_anything(zoo: Zoo) -> None:
    result = zoo.cli.run("download", "alpha", "nope")
    assert result.returncode == 3
    assert "'nope'" in result.stderr
    assert not zoo.cached("alpha").exists()


def test_offline_without_cache_is_one_line(zoo: Zoo) -> None:
    result = zoo.cli.run("download", "alpha", env={"OMNIHUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert "OfflineError" in result.stderr
    assert str(zoo.cached("alpha")) in result.stderr
    assert result.stderr.count("\n") == 1


def test_force_downloads_again(zoo: Zoo) -> None:
    assert zoo.cli.run("download", "delta").returncode == 0
    cached = zoo.cached("delta")
    cached.unlink()  # gone behind omnihub's back; --force must bring it back
    result = zoo.cli.run("download", "--force", "delta")
    assert result.returncode == 0, result.stderr
    assert cached.read_bytes() == zoo.contents["delta"]


def test_progress_bar_lines_when_not_a_terminal(zoo: Zoo) -> None:
    result = zoo.cli.run("download", "--progress", "alpha", "beta")
    assert result.returncode == 0, result.stderr
    bars = [line for line in result.stderr.splitlines() if "100%|" in line]
    assert sorted(line.split(":")[0].strip() for line in bars) == ["zoo.alpha", "zoo.beta"]
    assert "35.2k/35.2k" in next(b for b in bars if b.startswith("zoo.alpha"))


def test_no_progress_by_default_off_a_terminal(zoo: Zoo) -> None:
    result = zoo.cli.run("download", "alpha")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_download_over_http_from_loopback_server(zoo: Zoo, http_zoo: str) -> None:
    result = zoo.cli.run("download", "zoo.*", "-j", "4", env={"OMNIHUB_URL": http_zoo})
    assert result.returncode == 0, result.stderr
    for name, content in zoo.contents.items():
        assert zoo.cached(name).read_bytes() == content


def test_info_tells_whether_the_model_is_cached(zoo: Zoo) -> None:
    before = zoo.cli.run("info", "alpha")
    assert f"not cached (would be {zoo.cached('alpha')})" in before.stdout
    assert zoo.cli.run("download", "alpha").returncode == 0
    after = zoo.cli.run("info", "--json", "alpha")
    assert json.loads(after.stdout)["cache"] == f"cached at {zoo.cached('alpha')}"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
@pytest.mark.parametrize("sized", [True, False], ids=["sized", "unsized-pty"])
def test_live_progress_bars_on_a_terminal(zoo: Zoo, sized: bool) -> None:
    import fcntl
    import struct
    import termios

    controller, terminal = os.openpty()
    rows_cols = struct.pack("HHHH", 40, 120, 0, 0)  # a new pty is 0x0: tqdm would draw nothing
    if sized:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, rows_cols)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "omnihub", "download", "alpha", "beta"],
            env=zoo.cli.env,
            cwd=zoo.cli.root,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, screen
    assert "zoo.alpha: 100%" in screen
    assert "zoo.beta : 100%" in screen
    assert b"zoo.alpha  " in process.stdout  # results still go to stdout


def test_list_cached_shows_only_verified_copies(zoo: Zoo) -> None:
    assert zoo.cli.run("download", "alpha", "gamma").returncode == 0
    zoo.cached("gamma").write_bytes(b"truncated")  # no longer a valid copy
    listed = json.loads(zoo.cli.run("list", "--cached", "--json").stdout)
    assert [m["qualified_name"] for m in listed] == ["zoo.alpha"]
