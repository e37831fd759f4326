"""benchmarks.servers.PacedOrigin, the WAN the cluster benchmark puts behind nginx: byte
ranges and validators as a CDN answers them, and pacing per connection and for the link."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.servers import PacedOrigin, parse_range
from tests.runtime.helpers import payload

_MiB = 1 << 20


@given(size=st.integers(1, 10**9), first=st.integers(0, 10**9), length=st.integers(0, 10**9))
def test_parse_range_bounds_every_satisfiable_range_by_the_size(
    size: int, first: int, length: int
) -> None:
    last = first + length
    if first >= size:
        with pytest.raises(ValueError, match="unsatisfiable"):
            parse_range(f"bytes={first}-{last}", size)
        return
    assert parse_range(f"bytes={first}-{last}", size) == (first, min(size, last + 1))
    assert parse_range(f"bytes={first}-", size) == (first, size)


@given(size=st.integers(1, 10**9), suffix=st.integers(1, 10**9))
def test_a_suffix_range_is_the_last_bytes(size: int, suffix: int) -> None:
    assert parse_range(f"bytes=-{suffix}", size) == (max(0, size - suffix), size)


@pytest.mark.parametrize("header", [None, "", "items=0-1", "bytes=0-1,5-6", "bytes=x-"])
def test_no_single_byte_range_means_the_whole_file(header: str | None) -> None:
    assert parse_range(header, 10) is None


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, bytes]:
    data = payload(2 * _MiB + 123, seed=11)
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "f.bin").write_bytes(data)
    return tmp_path, data


@pytest.fixture
def fast(served: tuple[Path, bytes]) -> Iterator[PacedOrigin]:
    with PacedOrigin(served[0], per_connection=1 << 30) as origin:
        yield origin


def _logged(origin: PacedOrigin, uri: str, count: int) -> list[tuple[int, int]]:
    """``(status, body bytes)`` of ``uri``'s responses once ``count`` are logged (a response is
    logged after its last byte is sent, so the client may have it first), or after 10 s."""
    until = time.monotonic() + 10
    while True:
        sent = [(e.status, e.body_bytes) for e in origin.entries() if e.uri == uri]
        if len(sent) >= count or time.monotonic() > until:
            return sent
        time.sleep(0.01)


def test_ranges_validators_and_errors(fast: PacedOrigin, served: tuple[Path, bytes]) -> None:
    data = served[1]
    url = f"{fast.url}/zoo/f.bin"
    whole = requests.get(url, timeout=30)
    assert (whole.status_code, whole.content) == (200, data)
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert (part.status_code, part.content) == (206, data[100:200])
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["ETag"] == etag
    same = requests.get(url, headers={"Range": "bytes=5-", "If-Range": etag}, timeout=30)
    assert (same.status_code, same.content) == (206, data[5:])
    other = requests.get(url, headers={"Range": "bytes=5-", "If-Range": '"old"'}, timeout=30)
    assert (other.status_code, other.content) == (200, data)
    assert modified
    beyond = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=30)
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    assert _raw_status(fast, "/zoo/../../etc/passwd") == 404  # never outside the root
    assert requests.get(f"{fast.url}/zoo/missing", timeout=30).status_code == 404
    head = requests.head(url, timeout=30)
    assert head.headers["Content-Length"] == str(len(data))
    sent = _logged(fast, "/zoo/f.bin", 6)
    assert sent == [
        (200, len(data)),
        (206, 100),
        (206, len(data) - 5),
        (200, len(data)),
        (416, 0),
        (200, 0),
    ]


def _raw_status(origin: PacedOrigin, path: str) -> int:
    """GET ``path`` as written (requests would normalise the dots away)."""
    host, port = origin.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_each_connection_is_paced(served: tuple[Path, bytes]) -> None:
    root, data = served
    with PacedOrigin(root, per_connection=4 * _MiB) as origin:
        start = time.perf_counter()
        got = requests.get(f"{origin.url}/zoo/f.bin", timeout=30).content
        wall = time.perf_counter() - start
    assert got == data
    assert wall >= (len(data) - (128 << 10)) / (4 * _MiB)  # at most one chunk ahead


def test_the_link_paces_all_connections_together(served: tuple[Path, bytes]) -> None:
    root, data = served
    with PacedOrigin(root, per_connection=64 * _MiB, link=4 * _MiB) as origin:
        url = f"{origin.url}/zoo/f.bin"
        bodies: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: bodies.append(requests.get(url, timeout=30).content))
            for _ in range(2)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    assert bodies == [data, data]
    assert wall >= (2 * len(data) - (128 << 10)) / (4 * _MiB)
