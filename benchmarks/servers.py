"""External tools for the download benchmarks: nginx, curl and aria2c.

:func:`ensure_tools` installs missing ones from Debian's packages (``apt-get update`` once,
then ``apt-get install -y``). :class:`Nginx` runs a private nginx on 127.0.0.1 with its
configuration, pid, logs and temp paths in a temporary directory, in the foreground
(``daemon off; master_process off;`` -- one process we own and stop), serving ``root`` at
``/full/`` (no limit) and ``/limited/`` (``limit_rate`` per connection). :class:`PacedOrigin`
is a WAN in a thread: ``root`` served at a rate per connection *and* one for all of them
together (a site's link, or a CDN's allowance per client), which nginx cannot do.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "AccessEntry",
    "Nginx",
    "Pace",
    "PacedOrigin",
    "ToolError",
    "access_log_entries",
    "ensure_tools",
    "find_tool",
    "nginx_config",
    "parse_range",
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


class Pace:
    """A token bucket shared by threads: :meth:`take` of ``n`` bytes returns when sending
    them keeps the long-run rate at ``rate`` bytes/s, with at most ``burst`` bytes ahead.

    Reserve-then-sleep: a taker books its bytes at once (the level may go negative) and sleeps
    off the debt, so concurrent takers are served in turn and their sum is ``rate``.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"Pace needs a positive rate and burst, not {rate!r}/{burst!r}")
        self.rate, self.burst = float(rate), burst
        self._level = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Block until ``n`` more bytes may go out."""
        with self._lock:
            now = time.monotonic()
            self._level = min(self.burst, self._level + (now - self._last) * self.rate) - n
            self._last = now
            debt = -self._level
        if debt > 0:
            time.sleep(debt / self.rate)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_CHUNK = 128 << 10


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``Range: bytes=a-b`` / ``a-`` / ``-n``
    header within ``size`` bytes; None for no (or an unparsable) header, which means the whole
    file; ValueError when the range is unsatisfiable (the caller answers 416)."""
    found = _RANGE.match(header.strip()) if header else None
    if found is None:
        return None
    first, last = found.groups()
    if not first:
        if not last or int(last) == 0:
            raise ValueError(f"unsatisfiable range {header!r}")
        return max(0, size - int(last)), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ValueError(f"unsatisfiable range {header!r} for {size} bytes")
    return start, end


class _PacedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _PacedServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the origin keeps its own log (:meth:`PacedOrigin.entries`)."""

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        origin = self.server.origin
        uri = self.path.split("?", 1)[0]
        relative = os.path.normpath(uri.lstrip("/"))
        path = origin.root / relative  # symlinks inside root are followed, ".." is not
        if relative.startswith((".", "/")) or not path.is_file():
            self._status(404, uri)
            return
        stat = path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        asked = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        try:
            span = parse_range(asked if if_range in (None, etag) else None, stat.st_size)
        except ValueError:
            self._status(416, uri, {"Content-Range": f"bytes */{stat.st_size}"})
            return
        start, end = span or (0, stat.st_size)
        self.send_response(200 if span is None else 206)
        self.send_header("Content-Length", str(end - start))
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{stat.st_size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.end_headers()
        sent = 0 if head else self._send(path, start, end)
        origin.log(AccessEntry(uri, 200 if span is None else 206, sent, asked or "-"))

    def _status(self, code: int, uri: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.origin.log(AccessEntry(uri, code, 0, self.headers.get("Range") or "-"))

    def _send(self, path: Path, start: int, end: int) -> int:
        """Send ``[start, end)`` of ``path`` in chunks, each paid for on both paces."""
        own = Pace(self.server.origin.per_connection, _CHUNK)
        shared = self.server.origin.link
        sent = 0
        with path.open("rb") as body, contextlib.suppress(OSError):
            while start + sent < end:
                size = min(_CHUNK, end - start - sent)
                own.take(size)
                if shared is not None:
                    shared.take(size)
                sent += self.connection.sendfile(body, start + sent, size)
        return sent


class _PacedServer(ThreadingHTTPServer):
    daemon_threads = True
    origin: PacedOrigin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not an error worth a traceback."""


class PacedOrigin:
    """Files under ``root`` over HTTP/1.1 on 127.0.0.1 at WAN speed (a context manager).

    Every response is paced to ``per_connection`` bytes/s, and all of them together to
    ``link`` bytes/s when given. Single byte ranges (``Range``, ``If-Range`` against the
    ETag), ``HEAD``, ETag and Last-Modified as a CDN sends them; one :class:`AccessEntry` per
    response (body bytes actually sent) in :meth:`entries`.
    """

    def __init__(self, root: Path, per_connection: float, link: float | None = None) -> None:
        self.root = root.resolve()
        self.per_connection = per_connection
        self.link = None if link is None else Pace(link, _CHUNK)
        self._entries: list[AccessEntry] = []
        self._lock = threading.Lock()
        self._server: _PacedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the root is served at ``/``)."""
        assert self._server is not None, "PacedOrigin is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def log(self, entry: AccessEntry) -> None:
        """Record one response (called by the handler threads)."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[AccessEntry]:
        """Every response so far, in the order they finished."""
        with self._lock:
            return list(self._entries)

    def start(self) -> PacedOrigin:
        """Listen on a free loopback port and serve in a daemon thread."""
        self._server = _PacedServer(("127.0.0.1", 0), _PacedHandler)
        self._server.origin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="paced-origin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (responses in flight are cut); safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PacedOrigin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
