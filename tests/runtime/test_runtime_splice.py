"""The Linux zero-copy receive path (omnihub._splice) over real loopback TCP connections."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import omnihub._splice
import omnihub.download
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub._splice import splice_body, splice_target
from omnihub._stream import Flusher, WriteFailed
from omnihub.hub import fetch

from tests.runtime.helpers import Env, entry, payload

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "splice"), reason="Linux splice only"
)


@contextmanager
def _response(
    body: bytes, *, announced: int, stall: threading.Event | None = None
) -> Iterator[tuple[http.client.HTTPResponse, socket.socket]]:
    """A real HTTP response over loopback TCP announcing ``announced`` bytes, sending ``body``.

    With ``stall`` the server sends ``body`` and then waits for the event before closing.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    listener.close()

    def serve() -> None:
        try:
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n\r\n".encode() + body)
            if stall is not None:
                stall.wait(10)
        finally:
            conn.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    response = http.client.HTTPResponse(client)
    response.begin()
    try:
        yield response, client
    finally:
        if stall is not None:
            stall.set()
        server.join(10)
        response.close()
        client.close()


def _splice_into(
    path: Path, response: http.client.HTTPResponse, sock: socket.socket, left: int
) -> tuple[int, Any, list[int]]:
    hasher = hashlib.sha256()
    seen: list[int] = []
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flusher = Flusher(fd)
        count = splice_body(
            response,
            sock,
            fd,
            offset=0,
            left=left,
            hasher=hasher,
            flusher=flusher,
            progress=seen.append,
        )
        flusher.finish()
    finally:
        os.close(fd)
    return count, hasher, seen


@settings(max_examples=15, deadline=None)
@given(size=st.integers(0, 3 << 20), cut_fraction=st.floats(0, 1))
def test_spliced_prefix_and_hash_match_whatever_arrived(
    tmp_path_factory: pytest.TempPathFactory, size: int, cut_fraction: float
) -> None:
    """However early the peer closes, the file and the hash hold exactly the bytes received."""
    body = payload(size, seed=size)
    cut = int(size * cut_fraction)
    path = tmp_path_factory.mktemp("splice") / "partial"
    with _response(body[:cut], announced=size) as (response, sock):
        assert splice_target(response, size) is sock
        count, hasher, seen = _splice_into(path, response, sock, size)
        assert response.length == size - cut  # http.client's accounting stays exact
    assert count == cut
    assert sum(seen) == cut
    assert path.read_bytes() == body[:cut]
    assert hasher.hexdigest() == hashlib.sha256(body[:cut]).hexdigest()


def test_stall_past_the_read_timeout_raises_with_the_prefix_kept(tmp_path: Path) -> None:
    body = payload(300_000, seed=3)
    stall = threading.Event()
    path = tmp_path / "partial"
    with _response(body, announced=1_000_000, stall=stall) as (response, sock):
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError, match=r"no data for 0\.2 s"):
            _splice_into(path, response, sock, 1_000_000)
    assert path.read_bytes() == body


def test_file_side_error_is_a_write_failure(tmp_path: Path) -> None:
    body = payload(200_000, seed=4)
    path = tmp_path / "partial"
    path.write_bytes(b"")
    with _response(body, announced=len(body)) as (response, sock):
        fd = os.open(path, os.O_RDONLY)  # splicing into a read-only descriptor fails (EBADF)
        try:
            with pytest.raises(WriteFailed):
                splice_body(
                    response,
                    sock,
                    fd,
                    offset=0,
                    left=len(body),
                    hasher=hashlib.sha256(),
                    flusher=Flusher(fd),
                )
        finally:
            os.close(fd)


def test_not_a_target_when_chunked_or_length_disagrees() -> None:
    body = b"x" * 10
    with _response(body, announced=len(body)) as (response, _):
        assert splice_target(response, len(body) + 1) is None
        response.chunked = True
        assert splice_target(response, len(body)) is None


@pytest.mark.parametrize("enabled", [True, False])
def test_fetch_takes_the_splice_path_only_when_enabled(
    env: Env, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    calls: list[int] = []
    real = omnihub._splice.splice_body

    def watched(*args: Any, **kwargs: Any) -> int:
        count = real(*args, **kwargs)
        calls.append(count)
        return count

    monkeypatch.setattr(omnihub.download, "splice_body", watched)
    if not enabled:
        monkeypatch.setenv("OMNIHUB_SPLICE", "0")
    data = payload(2_000_000, seed=5)
    env.publish("model.fb", data)
    assert fetch(entry(data=data)).read_bytes() == data
    assert calls == ([len(data)] if enabled else [])
