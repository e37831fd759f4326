"""Shared pieces of the reliability suite: a fault server on any loopback address, a watcher
that proves nothing unverified ever appears at a cache path, and child-process runners.

Built on the runtime suite's real loopback server (:mod:`tests.runtime.fault_server`); nothing
here is a mock of requests or of the filesystem.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.fault_server import Fault, FaultServer, Resource, _Aborted, _Handler, _Server
from tests.runtime.helpers import REPO, child_env

__all__ = [
    "FinalWatcher",
    "HostServer",
    "endless",
    "listing",
    "run_in_mount_namespace",
]


def endless(limit: int) -> Fault:
    """Answer 200 with no Content-Length and keep sending the file over and over, up to
    ``limit`` bytes, until the client hangs up (a close-delimited, unbounded body)."""
    return Fault("endless", limit)


class _ExtraHandler(_Handler):
    """The runtime suite's handler plus the :func:`endless` fault."""

    def _respond(
        self,
        path: str,
        headers: Any,
        fault: Fault | None,
        resource: Resource | None,
        *,
        head: bool,
    ) -> tuple[int, int]:
        if fault is None or fault.kind != "endless" or resource is None:
            return super()._respond(path, headers, fault, resource, head=head)
        owner = self.server.owner
        assert isinstance(owner, HostServer)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent, limit = 0, int(fault.arg)
        try:
            while sent < limit and not owner._stopping.is_set():
                self.wfile.write(resource.data)
                sent += len(resource.data)
                owner.endless_sent[path] = sent
        except OSError:
            owner.hung_up.add(path)
            raise _Aborted from None
        return 200, sent


class HostServer(FaultServer):
    """A :class:`FaultServer` bound to ``host`` (e.g. ``127.0.0.2``: another origin)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self._server.server_close()
        self._server = _Server((host, 0), _ExtraHandler)
        self._server.owner = self
        self.endless_sent: dict[str, int] = {}
        self.hung_up: set[str] = set()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def clear_faults(self) -> None:
        """Forget faults queued for requests that never came (e.g. a child killed early)."""
        with self._lock:
            self._faults.clear()


class FinalWatcher:
    """Watches a cache path from another thread for the whole ``with`` block.

    Every distinct file seen at ``path`` (by inode and mtime) is hashed; :attr:`bad` lists
    the sha256 of any that was not the expected content. Because omnihub publishes with
    ``os.replace``, a correct implementation shows either nothing or the verified file.
    """

    def __init__(self, path: Path, expected_sha256: str | None) -> None:
        self.path = path
        self.expected = expected_sha256
        self.seen: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _look(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        key = (st.st_ino, st.st_mtime_ns)
        if key in self.seen:
            return
        try:
            with open(self.path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            return
        self.seen[key] = digest

    def _run(self) -> None:
        while not self._stop.is_set():
            self._look()
            self._stop.wait(0.001)

    @property
    def bad(self) -> list[str]:
        return [d for d in self.seen.values() if self.expected is not None and d != self.expected]

    def __enter__(self) -> FinalWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._look()


def listing(root: Path) -> list[str]:
    """Every path under ``root`` (relative, sorted)."""
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def run_in_mount_namespace(
    setup: str, code: str, *, env: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run shell ``setup`` (mounts) then ``python -c code`` in a private mount namespace.

    The mounts vanish with the namespace, so parallel tests cannot see each other's. Skips
    the test when mount namespaces are unavailable (not root, or a restricted container).
    ``code`` must print one JSON object as its last line.
    """
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a private tmpfs / read-only bind")
    probe = subprocess.run(
        [unshare, "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount in a private namespace here: {probe.stderr.decode().strip()}")
    script = f'set -e\n{setup}\nexec "$0" -c "$1"\n'
    proc = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", script, sys.executable, code],
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
