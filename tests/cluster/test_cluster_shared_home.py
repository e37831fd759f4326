"""A shared OMNIHUB_HOME seen by several "machines": one download, no torn reads.

Each process runs in its own mount namespace (``unshare --mount``) in which one shared
directory is bind-mounted at its own mount point and used as ``OMNIHUB_HOME`` -- the same
directory reached through separate mounts, at different paths, as NFS clients reach an export.
Needs root (or CAP_SYS_ADMIN) and util-linux's ``unshare``; skipped with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.fault_server import Fault, FaultServer
from tests.runtime.helpers import REPO, child_env, entry, entry_json, payload

NODES = 8
READERS = 4


def _unshare_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "separate mount namespaces need root (unshare --mount)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount is not permitted here: {probe.stderr.strip()}"
    return None


pytestmark = pytest.mark.skipif((problem := _unshare_problem()) is not None, reason=problem or "")

#: sh script: bind-mount $1 at $2 inside this (new, private) mount namespace, then exec the rest
_BIND = 'src=$1; dst=$2; shift 2; mount --bind "$src" "$dst" && exec "$@"'

_READER = """
import hashlib, json, os, sys, time
path, expected, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
seen = {"absent": 0, "whole": 0, "torn": 0}
while time.monotonic() < deadline and seen["whole"] < 20:
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        seen["absent"] += 1
        time.sleep(0.002)
        continue
    seen["whole" if hashlib.sha256(data).hexdigest() == expected else "torn"] += 1
print(json.dumps(seen))
"""


def _in_namespace(shared: Path, mount_point: Path, *command: str) -> list[str]:
    mount_point.mkdir(parents=True)
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", _BIND, "sh", str(shared), str(mount_point), *command,
    ]  # fmt: skip


@pytest.fixture
def origin() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def test_machines_sharing_a_home_download_once_and_never_read_a_torn_file(
    origin: FaultServer, tmp_path: Path
) -> None:
    data = payload(6 << 20, seed=7)
    model = entry("shared.fb", data=data)
    origin.add("/zoo/samediff/shared.fb", data)
    release = threading.Event()
    origin.fault("/zoo/samediff/shared.fb", Fault.stall(2 << 20, release))
    shared = tmp_path / "shared-home"
    shared.mkdir()
    env = child_env(
        {
            "OMNIHUB_URL": f"{origin.url}/zoo",
            "OMNIHUB_DISABLE_PROGRESS": "1",
            "OMNIHUB_READ_TIMEOUT": "60",
        }
    )
    expected = hashlib.sha256(data).hexdigest()
    readers = []
    for n in range(READERS):
        mount = tmp_path / f"reader{n}" / "omnihub"
        command = [sys.executable, "-c", _READER, str(mount / "samediff" / "shared.fb"), expected]
        readers.append(
            subprocess.Popen(
                _in_namespace(shared, mount, *command, "60"),
                cwd=REPO,
                env={**env, "OMNIHUB_HOME": str(mount)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    nodes = []
    for n in range(NODES):
        mount = tmp_path / f"machine{n}" / "mnt" / "models"  # a different path on each machine
        nodes.append(
            subprocess.Popen(
                _in_namespace(
                    shared, mount, sys.executable, "-m", "tests.runtime.child", entry_json(model)
                ),
                cwd=REPO,
                env={**env, "OMNIHUB_HOME": str(mount)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        # every machine is waiting on the one download before the origin lets it finish
        deadline = time.monotonic() + 60
        while not (shared / "samediff" / "shared.fb.incomplete").exists():
            assert time.monotonic() < deadline, "no machine started the download"
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        release.set()
    for node in nodes:
        out, err = node.communicate(timeout=120)
        assert node.returncode == 0, out + err
        assert json.loads(out.strip().splitlines()[-1])["sha256"] == expected
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        seen = json.loads(out)
        assert seen["torn"] == 0, seen
        assert seen["whole"] > 0, seen
        assert seen["absent"] > 0, seen  # it was reading while the download ran
    assert len(origin.requests_for("/zoo/samediff/shared.fb")) == 1
    assert (shared / "samediff" / "shared.fb").read_bytes() == data
    # nothing is left mounted outside the namespaces: the mount points are empty here
    assert not any((tmp_path / "machine0" / "mnt" / "models").iterdir())
