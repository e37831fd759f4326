"""A real HTTP/1.1 server on 127.0.0.1 with byte ranges and scripted faults, for download tests.

Not a mock: the client under test talks to it through real sockets, so a "connection reset"
is a TCP RST and a "truncated body" is a closed connection short of Content-Length.

Usage::

    server = FaultServer().start()
    server.add("/samediff/m.fb", data)                   # served with ETag/Last-Modified/ranges
    server.fault("/samediff/m.fb", Fault.status(503), Fault.reset(1000))  # next two requests
    ...
    server.requests_for("/samediff/m.fb")                # what the client asked for

Each queued fault applies to one request of that path, in order; later requests are served
normally. Reusable by any test module: ``from tests.runtime.fault_server import ...``.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Fault", "FaultServer", "Logged", "Resource"]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour for one request."""

    kind: str
    arg: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def none() -> Fault:
        """Serve this request normally (a placeholder to target a later request)."""
        return Fault("none")

    @staticmethod
    def status(code: int, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer with this status and a tiny body."""
        return Fault("status", code, dict(headers or {}))

    @staticmethod
    def truncate(n: int) -> Fault:
        """Announce the full Content-Length, send ``n`` body bytes, close the connection."""
        return Fault("truncate", n)

    @staticmethod
    def reset(n: int) -> Fault:
        """Send ``n`` body bytes, then abort the connection with a TCP RST."""
        return Fault("reset", n)

    @staticmethod
    def stall(n: int, release: threading.Event) -> Fault:
        """Send ``n`` body bytes, hang until ``release`` is set, then send the rest.

        If the server stops first, or the client has gone, the connection is dropped.
        """
        return Fault("stall", (n, release))

    @staticmethod
    def flip(offset: int) -> Fault:
        """Serve the body with the byte at ``offset`` inverted (right size, wrong content)."""
        return Fault("flip", offset)

    @staticmethod
    def body(data: bytes) -> Fault:
        """Serve other content (consistent Content-Length), e.g. a file of the wrong size."""
        return Fault("body", data)

    @staticmethod
    def unsized(data: bytes) -> Fault:
        """Serve ``data`` without Content-Length, ending the body by closing the connection."""
        return Fault("unsized", data)

    @staticmethod
    def drip(delay: float) -> Fault:
        """Send the body one byte per ``delay`` seconds (past a read timeout)."""
        return Fault("drip", delay)

    @staticmethod
    def redirect(location: str, code: int = 302) -> Fault:
        """Redirect to ``location``."""
        return Fault("redirect", (code, location))

    @staticmethod
    def encoded(data: bytes, encoding: str = "gzip", *, sized: bool = True) -> Fault:
        """Answer 200 with ``data`` (already encoded) under ``Content-Encoding: encoding``,
        with its encoded Content-Length when ``sized``, else ending at connection close."""
        return Fault("encoded", (data, encoding, sized))

    @staticmethod
    def drip_headers(delay: float) -> Fault:
        """Send the status line and headers one byte per ``delay`` seconds."""
        return Fault("drip_headers", delay)

    @staticmethod
    def ignore_range() -> Fault:
        """Answer 200 with the whole file even when a Range was asked for."""
        return Fault("ignore_range")


@dataclass
class Resource:
    """A file the server serves."""

    data: bytes
    etag: str | None
    last_modified: str | None
    content_type: str = "application/octet-stream"
    ignore_range: bool = False
    redirect: tuple[int, str] | None = None


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it, and what it answered (status 0: still answering,
    or the connection was dropped before a status line)."""

    method: str
    path: str
    headers: Mapping[str, str]
    status: int
    body_bytes: int  # body bytes actually sent

    @property
    def range_end(self) -> int | None:
        """The last byte asked for with ``Range: bytes=N-M``, or None."""
        value = self.headers.get("range")
        if not value or not value.startswith("bytes="):
            return None
        last = value[6:].split("-")[1]
        return int(last) if last else None

    @property
    def range_start(self) -> int | None:
        """The first byte asked for with ``Range: bytes=N-``, or None."""
        value = self.headers.get("range")
        if not value or not value.startswith("bytes="):
            return None
        return int(value[6:].split("-")[0])


class _Aborted(Exception):
    """The handler dropped the connection on purpose."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        path = self.path
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault, resource = owner._take(path)
        index = owner._record(Logged(self.command, path, headers, 0, 0))
        sent = 0
        status = 0
        try:
            status, sent = self._respond(path, headers, fault, resource, head=head)
        except (_Aborted, OSError):
            self.close_connection = True
        finally:
            owner._update(index, Logged(self.command, path, headers, status, sent))

    def _simple(
        self, code: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> int:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return code

    # One branch per fault kind the tests inject, each a few lines: a dispatch table would
    # only move the branches apart from the response they shape.
    def _respond(  # noqa: PLR0912
        self,
        path: str,
        headers: Mapping[str, str],
        fault: Fault | None,
        resource: Resource | None,
        *,
        head: bool,
    ) -> tuple[int, int]:
        if fault is not None and fault.kind == "status":
            return self._simple(int(fault.arg), b"fault\n", fault.headers), 0
        if fault is not None and fault.kind in {"encoded", "drip_headers"}:
            return self._odd_response(fault, resource, head=head)
        if fault is not None and fault.kind == "redirect":
            code, location = fault.arg
            return self._simple(code, b"", {"Location": location}), 0
        if resource is None:
            return self._simple(404, b"not found\n"), 0
        if resource.redirect is not None:
            code, location = resource.redirect
            return self._simple(code, b"", {"Location": location}), 0
        data = resource.data
        if fault is not None and fault.kind == "flip":
            i = int(fault.arg)
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
        if fault is not None and fault.kind == "body":
            data = fault.arg
        if fault is not None and fault.kind == "unsized":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if head:
                return 200, 0
            return 200, self._send_body(fault.arg, None)
        start, end = 0, len(data)
        status = 200
        extra: dict[str, str] = {}
        if resource.etag:
            extra["ETag"] = resource.etag
        if resource.last_modified:
            extra["Last-Modified"] = resource.last_modified
        extra["Accept-Ranges"] = "bytes"
        extra["Content-Type"] = resource.content_type
        ranged = "range" in headers and not resource.ignore_range
        ranged = ranged and not (fault is not None and fault.kind == "ignore_range")
        if ranged:
            if_range = headers.get("if-range")
            if if_range is None or if_range in {resource.etag, resource.last_modified}:
                spec = headers["range"].removeprefix("bytes=")
                first_text, _, last_text = spec.partition("-")
                first = int(first_text)
                last = min(int(last_text), len(data) - 1) if last_text else len(data) - 1
                if first >= len(data) or last < first:
                    return self._simple(416, b"", {"Content-Range": f"bytes */{len(data)}"}), 0
                start, end, status = first, last + 1, 206
                extra["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        body = data[start:end]
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return status, 0
        return status, self._send_body(body, fault)

    def _odd_response(
        self, fault: Fault, resource: Resource | None, *, head: bool
    ) -> tuple[int, int]:
        """An encoded body, or headers sent a byte at a time."""
        if fault.kind == "encoded":
            data, encoding, sized = fault.arg
            self.send_response(200)
            self.send_header("Content-Encoding", encoding)
            if sized:
                self.send_header("Content-Length", str(len(data)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            return 200, 0 if head else self._send_body(data, None)
        body = resource.data if resource is not None else b""
        head_bytes = (
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
            "X-Padding: dripdripdripdripdripdripdripdripdripdripdrip\r\n\r\n"
        ).encode()
        for i in range(len(head_bytes)):
            if self.server.owner._stopping.is_set():
                raise _Aborted
            self.wfile.write(head_bytes[i : i + 1])
            self.wfile.flush()
            time.sleep(float(fault.arg))
        self.wfile.write(body)
        return 200, len(body)

    def _send_body(self, body: bytes, fault: Fault | None) -> int:
        kind = fault.kind if fault is not None else None
        if kind == "truncate":
            n = int(fault.arg)  # type: ignore[union-attr]
            self.wfile.write(body[:n])
            self.connection.shutdown(socket.SHUT_WR)
            raise _Aborted
        if kind == "reset":
            n = int(fault.arg)  # type: ignore[union-attr]
            self.wfile.write(body[:n])
            time.sleep(0.05)  # let the bytes leave before the RST
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            raise _Aborted
        if kind == "stall":
            n, release = fault.arg  # type: ignore[union-attr]
            self.wfile.write(body[:n])
            while not release.wait(0.05):
                if self.server.owner._stopping.is_set():
                    raise _Aborted
            self.wfile.write(body[n:])
            return len(body)
        if kind == "drip":
            delay = float(fault.arg)  # type: ignore[union-attr]
            for i in range(len(body)):
                if self.server.owner._stopping.is_set():
                    raise _Aborted
                self.wfile.write(body[i : i + 1])
                time.sleep(delay)
            return len(body)
        view = memoryview(body)
        for i in range(0, len(body), 1 << 20):
            self.wfile.write(view[i : i + (1 << 20)])
        return len(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # aborted connections are the point of this server


class FaultServer:
    """The server; ``start()`` it, then ``stop()`` (or use it as a context manager)."""

    def __init__(self) -> None:
        self._resources: dict[str, Resource] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._log: list[Logged] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(
        self,
        path: str,
        data: bytes,
        *,
        etag: str | None = "auto",
        last_modified: str | None = "auto",
        content_type: str = "application/octet-stream",
        ignore_range: bool = False,
    ) -> str:
        """Serve ``data`` at ``path`` (replacing what was there); returns the full URL."""
        if etag == "auto":
            etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        if last_modified == "auto":
            last_modified = formatdate(time.time(), usegmt=True)
        with self._lock:
            self._resources[path] = Resource(
                data, etag, last_modified, content_type, ignore_range=ignore_range
            )
        return self.url + path

    def add_redirect(self, path: str, location: str, code: int = 302) -> str:
        """Always redirect ``path`` to ``location``."""
        with self._lock:
            self._resources[path] = Resource(b"", None, None, redirect=(code, location))
        return self.url + path

    def remove(self, path: str) -> None:
        with self._lock:
            self._resources.pop(path, None)

    def fault(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests of ``path``, one per request."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

    def requests_for(self, path: str, method: str = "GET") -> list[Logged]:
        with self._lock:
            return [r for r in self._log if r.path == path and r.method == method]

    @property
    def log(self) -> list[Logged]:
        with self._lock:
            return list(self._log)

    def _take(self, path: str) -> tuple[Fault | None, Resource | None]:
        with self._lock:
            queue = self._faults.get(path)
            fault = queue.pop(0) if queue else None
            return fault, self._resources.get(path)

    def _record(self, entry: Logged) -> int:
        with self._lock:
            self._log.append(entry)
            return len(self._log) - 1

    def _update(self, index: int, entry: Logged) -> None:
        with self._lock:
            self._log[index] = entry
