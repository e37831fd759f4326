"""External tools for the download benchmarks: nginx, curl and aria2c.

:func:`ensure_tools` installs missing ones from Debian's packages (``apt-get update`` once,
then ``apt-get install -y``). :class:`Nginx` runs a private nginx on 127.0.0.1 with its
configuration, pid, logs and temp paths in a temporary directory, in the foreground
(``daemon off; master_process off;`` -- one process we own and stop), serving ``root`` at
``/full/`` (no limit) and ``/limited/`` (``limit_rate`` per connection).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "AccessEntry",
    "Nginx",
    "ToolError",
    "access_log_entries",
    "ensure_tools",
    "find_tool",
    "nginx_config",
    "wait_listening",
]

#: executable -> the Debian package that provides it
_PACKAGES = {"nginx": "nginx", "aria2c": "aria2", "curl": "curl"}
_SBIN = (Path("/usr/sbin"), Path("/sbin"))


class ToolError(RuntimeError):
    """A tool is missing and could not be installed, or a server did not come up."""


def find_tool(name: str) -> Path | None:
    """The executable ``name`` on PATH or in /usr/sbin (nginx lives there), else None."""
    found = shutil.which(name)
    if found:
        return Path(found)
    for directory in _SBIN:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_tools(names: Iterable[str]) -> dict[str, Path]:
    """Return the paths of ``names``, installing missing ones with apt-get first."""
    wanted = list(names)
    missing = [n for n in wanted if find_tool(n) is None]
    if missing:
        packages = sorted({_PACKAGES[n] for n in missing})
        apt = shutil.which("apt-get")
        if apt is None:
            raise ToolError(f"{', '.join(missing)} missing and apt-get is not available")
        print(f"installing {' '.join(packages)} with apt-get ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", *packages]):
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode != 0:
                tail = "\n".join(done.stderr.strip().splitlines()[-4:])
                raise ToolError(f"{' '.join(cmd)} failed ({done.returncode}): {tail}")
    paths: dict[str, Path] = {}
    for name in wanted:
        path = find_tool(name)
        if path is None:
            raise ToolError(f"{name} is still missing after installing {_PACKAGES[name]}")
        paths[name] = path
    return paths


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_PREAMBLE = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    sendfile on;
"""


def wait_listening(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    """Whether ``proc`` accepts connections on 127.0.0.1:``port`` before ``deadline``
    (False as soon as it exits)."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return True
        time.sleep(0.02)
    return False


def nginx_config(tmp: Path, http: str, *, connections: int = 1024) -> str:
    """A whole ``nginx.conf`` for a private nginx living in ``tmp`` (in the foreground, one
    worker, pid, logs and temporary files under ``tmp``) whose ``http`` block also holds
    ``http`` (already formatted: log format, servers, ...)."""
    body = "".join(f"    {line}\n" if line else "\n" for line in http.strip("\n").split("\n"))
    return _PREAMBLE.format(tmp=tmp, connections=connections) + body + "}\n"


_HTTP = """\
log_format bench '$uri $status $body_bytes_sent "$http_range"';
access_log {tmp}/access.log bench;
tcp_nopush on;
keepalive_requests 10000;
server {{
    listen 127.0.0.1:{port};
    location /full/ {{ alias {root}/; }}
    location /limited/ {{ alias {root}/; limit_rate {limit_rate}; }}
}}
"""


@dataclass(frozen=True)
class AccessEntry:
    """One line of the private access log."""

    uri: str
    status: int
    body_bytes: int
    range_header: str


def access_log_entries(text: str) -> list[AccessEntry]:
    """Parse the ``bench`` log format: ``$uri $status $body_bytes_sent "$http_range"``."""
    entries = []
    for line in text.splitlines():
        parts = line.rsplit(" ", 3)
        if len(parts) != 4:
            continue
        uri, status, sent, rng = parts
        if status.isdigit() and sent.isdigit():
            entries.append(AccessEntry(uri, int(status), int(sent), rng.strip('"')))
    return entries


class Nginx:
    """A private nginx serving ``root``; use as a context manager (stopped on exit)."""

    def __init__(self, binary: Path, root: Path, tmp: Path, limit_rate: str = "20m") -> None:
        self.binary = binary
        self.root = root.resolve()
        self.tmp = tmp.resolve()
        self.limit_rate = limit_rate
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, kind: str = "full") -> str:
        """The base URL for ``kind`` "full" (unlimited) or "limited" (``limit_rate``)."""
        return f"http://127.0.0.1:{self.port}/{kind}"

    @property
    def access_log(self) -> Path:
        """The private access log (one :class:`AccessEntry` per line)."""
        return self.tmp / "access.log"

    def entries(self) -> list[AccessEntry]:
        """Everything logged so far (nginx writes each line when a request completes)."""
        if not self.access_log.exists():
            return []
        return access_log_entries(self.access_log.read_text(encoding="utf-8", errors="replace"))

    def start(self) -> None:
        """Write the configuration and start nginx on a free port (a few attempts)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(5):
            self.port = free_port()
            conf = self.tmp / "nginx.conf"
            conf.write_text(
                nginx_config(
                    self.tmp,
                    _HTTP.format(
                        tmp=self.tmp, root=self.root, port=self.port, limit_rate=self.limit_rate
                    ),
                ),
                encoding="utf-8",
            )
            err = (self.tmp / "stderr.log").open("wb")
            self._proc = subprocess.Popen(
                [
                    str(self.binary),
                    "-p",
                    str(self.tmp),
                    "-e",
                    str(self.tmp / "error.log"),
                    "-c",
                    str(conf),
                ],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
            err.close()
            if self._wait_ready(deadline=time.monotonic() + 10):
                return
            last_error = self._stop_and_read_errors()
        raise ToolError(f"nginx did not start on 127.0.0.1: {last_error}")

    def _wait_ready(self, deadline: float) -> bool:
        assert self._proc is not None
        return wait_listening(self._proc, self.port, deadline)

    def _stop_and_read_errors(self) -> str:
        self.stop()
        texts = []
        for name in ("stderr.log", "error.log"):
            path = self.tmp / name
            if path.exists():
                texts.append(path.read_text(encoding="utf-8", errors="replace").strip())
        return " | ".join(t for t in texts if t)[-500:]

    def stop(self) -> None:
        """Stop nginx (TERM, then KILL after 5 s); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
