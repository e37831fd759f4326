"""docs/cluster.md's nginx pull-through cache: 32 nodes, one origin fetch per file.

nginx runs the configuration block of docs/cluster.md (upstreams, port and cache path
replaced, see tests/cluster/proxy.py) in front of a loopback origin that logs every request
(tests/runtime/fault_server.py). Skipped with the reason when nginx is not installed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from omnihub._enums import Framework
from omnihub.catalog import ModelEntry

from tests.cli.zoo import entry, pinned, write_catalog
from tests.runtime.fault_server import Fault, FaultServer
from tests.runtime.helpers import payload

from .conftest import Cli, node_env
from .proxy import CachingProxy, documented_config, find_nginx

NODES = 32

pytestmark = pytest.mark.skipif(
    find_nginx() is None, reason="nginx is not installed (.ci/run installs it with apt-get)"
)


@pytest.fixture
def origin() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def proxy(origin: FaultServer, tmp_path: Path) -> Iterator[CachingProxy]:
    binary = find_nginx()
    assert binary is not None
    with CachingProxy(binary, origin.url, tmp_path / "nginx") as running:
        yield running


def _served_once(origin: FaultServer, path: str, size: int) -> None:
    """The origin sent every byte of ``path`` exactly once (whole, or as adjacent slices)."""
    served = sorted(
        ((r.range_start or 0, r.body_bytes, r.status) for r in origin.requests_for(path)),
    )
    assert all(status in (200, 206) for _, _, status in served), served
    offset = 0
    for start, sent, _ in served:
        assert start == offset, f"{path}: origin served bytes from {start} again: {served}"
        offset += sent
    assert offset == size, f"{path}: origin sent {offset} bytes of {size}: {served}"


def _publish(origin: FaultServer, cli: Cli, files: dict[str, bytes]) -> dict[str, ModelEntry]:
    models = {}
    for name, data in files.items():
        model = pinned(entry(name, "cluster", framework=Framework.ONNX, file=f"{name}.bin"), data)
        origin.add(f"/zoo/onnx/{name}.bin", data)
        models[name] = model
    write_catalog(cli.site, "cluster", models.values())
    return models


def _start_nodes(
    cli: Cli, homes: list[Path], url: str, names: list[str]
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "omnihub", "download", *names, "--json", "-j", "2"],
            env=node_env(cli, str(home), url),
            cwd=cli.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in homes
    ]


def _finish(nodes: list[subprocess.Popen[str]], count: int) -> None:
    for node in nodes:
        out, err = node.communicate(timeout=240)
        assert node.returncode == 0, out + err
        assert len(json.loads(out)["downloaded"]) == count


def _wait_for(paths: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the nodes did not all start downloading"
        time.sleep(0.05)


def test_32_nodes_behind_the_cache_fetch_each_file_from_the_origin_once(
    cli: Cli, origin: FaultServer, proxy: CachingProxy, tmp_path: Path
) -> None:
    files = {"big": payload(40 << 20, seed=1), "small": payload(70_000, seed=2)}
    models = _publish(origin, cli, files)
    # The origin holds the big file's body after 1 MiB until every node has asked for it,
    # so all 32 requests are concurrent misses: proxy_cache_lock must turn them into one.
    release = threading.Event()
    origin.fault("/zoo/onnx/big.bin", Fault.stall(1 << 20, release))
    homes = [tmp_path / "nodes" / f"node{n:02d}" for n in range(NODES)]
    nodes = _start_nodes(cli, homes, f"{proxy.url}/zoo", sorted(files))
    try:
        _wait_for([home / "onnx" / "big.bin.lock" for home in homes], timeout=120)
        time.sleep(0.5)  # the last node's request reaches nginx
    finally:
        release.set()
    _finish(nodes, len(files))
    for name, data in files.items():
        _served_once(origin, f"/zoo/onnx/{name}.bin", len(data))
        for home in homes:
            cached = home / "onnx" / models[name].file
            assert hashlib.sha256(cached.read_bytes()).hexdigest() == models[name].sha256
    assert len(origin.requests_for("/zoo/onnx/big.bin")) == 3  # 16 MiB slices


def test_ranges_are_answered_from_the_cache(
    cli: Cli, origin: FaultServer, proxy: CachingProxy, tmp_path: Path
) -> None:
    data = payload(3 << 20, seed=3)
    _publish(origin, cli, {"ranged": data})
    url = f"{proxy.url}/zoo/onnx/ranged.bin"
    # the first request is itself ranged (a resuming node)
    first = requests.get(url, headers={"Range": "bytes=1000-"}, timeout=30)
    assert first.status_code == 206
    assert first.content == data[1000:]
    for start, end in ((0, 99), (2_000_000, 2_999_999), (len(data) - 10, len(data) - 1)):
        answer = requests.get(url, headers={"Range": f"bytes={start}-{end}"}, timeout=30)
        assert answer.status_code == 206
        assert answer.headers["X-Cache-Status"] == "HIT"
        assert answer.content == data[start : end + 1]
    _served_once(origin, "/zoo/onnx/ranged.bin", len(data))


def test_hub_redirects_are_followed_and_cached_by_nginx(
    cli: Cli, origin: FaultServer, proxy: CachingProxy, tmp_path: Path
) -> None:
    """HF_ENDPOINT at the cache: /resolve/ redirects to a "CDN" that nginx fetches once."""
    data = payload(1 << 20, seed=4)
    origin.add("/cdn/blobs/w.bin", data)
    origin.add_redirect("/hf/org/repo/resolve/main/w.bin", f"{origin.url}/cdn/blobs/w.bin")
    model = pinned(
        entry("w", "hub", framework=Framework.ONNX, file="w.bin", hugging_face_id="org/repo"),
        data,
    )
    write_catalog(cli.site, "hub", [model])
    homes = [tmp_path / f"hub{n}" for n in range(6)]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "omnihub", "download", "hub.w", "--json", "-j", "2"],
            env={**node_env(cli, str(home), f"{proxy.url}/zoo"), "HF_ENDPOINT": f"{proxy.url}/hf"},
            cwd=cli.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in homes
    ]
    _finish(nodes, 1)
    for home in homes:
        assert (home / "onnx" / "w.bin").read_bytes() == data
    _served_once(origin, "/cdn/blobs/w.bin", len(data))
    assert len(origin.requests_for("/hf/org/repo/resolve/main/w.bin")) == 1


def test_if_range_is_answered_against_the_origins_validators(
    cli: Cli, origin: FaultServer, proxy: CachingProxy
) -> None:
    """A resume sends ``Range`` + ``If-Range`` (the saved ETag, else Last-Modified): through
    the slices nginx must answer the range when the validator is the file's, and the whole
    file when it is another version's, so a node never splices two versions."""
    data = payload((20 << 20) + 12_345, seed=5)  # two slices
    _publish(origin, cli, {"validated": data})
    origin.add("/zoo/onnx/validated.bin", data, etag='"v1"')
    url = f"{proxy.url}/zoo/onnx/validated.bin"
    whole = requests.get(url, timeout=60)
    assert whole.status_code == 200
    assert whole.content == data
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    assert etag == '"v1"'  # the origin's validator, kept through the slices
    assert [r.status for r in origin.requests_for("/zoo/onnx/validated.bin")] == [206, 206]
    start = 17_000_000  # inside the second slice
    for validator in (etag, modified):
        resumed = requests.get(
            url, headers={"Range": f"bytes={start}-", "If-Range": validator}, timeout=30
        )
        assert resumed.status_code == 206, validator
        assert resumed.headers["X-Cache-Status"] == "HIT"
        assert resumed.headers["ETag"] == etag
        assert resumed.content == data[start:]
    for stale in ('"another-version"', "Thu, 01 Jan 2015 00:00:00 GMT"):
        restarted = requests.get(
            url, headers={"Range": f"bytes={start}-", "If-Range": stale}, timeout=30
        )
        assert restarted.status_code == 200, stale
        assert restarted.content == data
    _served_once(origin, "/zoo/onnx/validated.bin", len(data))


def _partial_size(home: Path) -> int:
    return sum(p.stat().st_size for p in home.rglob("*.incomplete"))


def test_a_node_killed_mid_download_resumes_through_the_cache(
    cli: Cli, origin: FaultServer, proxy: CachingProxy, tmp_path: Path
) -> None:
    """A node killed half-way resumes with a ranged request that the cached slices answer;
    the file is verified and the origin still sends each byte once."""
    data = payload(40 << 20, seed=6)
    models = _publish(origin, cli, {"resumed": data})
    release = threading.Event()
    # the origin holds the first slice after 12 MiB: the node has a partial and waits
    origin.fault("/zoo/onnx/resumed.bin", Fault.stall(12 << 20, release))
    home = tmp_path / "node"
    [first] = _start_nodes(cli, [home], f"{proxy.url}/zoo", ["resumed"])
    try:
        deadline = time.monotonic() + 120
        while _partial_size(home) < 4 << 20:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the node wrote no partial"
            time.sleep(0.05)
        first.kill()
        first.communicate()
    finally:
        release.set()
    assert 0 < _partial_size(home) < len(data)
    second = _start_nodes(cli, [home], f"{proxy.url}/zoo", ["resumed"])
    _finish(second, 1)
    cached = (home / "onnx" / "resumed.bin").read_bytes()
    assert hashlib.sha256(cached).hexdigest() == models["resumed"].sha256
    # nginx logs a request when it ends: the killed one's line may come after the resume's
    asked = [line[4] for line in proxy.access_log() if line[0] == "/zoo/onnx/resumed.bin"]
    assert asked.count('"-"') == 1, asked  # the first attempt; the second asked for ranges
    resumed = [r for r in asked if r != '"-"']
    assert resumed, asked
    assert all(r.startswith('"bytes=') and not r.startswith('"bytes=0-') for r in resumed), asked
    _served_once(origin, "/zoo/onnx/resumed.bin", len(data))


def test_a_lock_timeout_shorter_than_a_piece_sends_waiting_nodes_to_the_origin(
    cli: Cli, origin: FaultServer, tmp_path: Path
) -> None:
    """Why the block sets ``proxy_cache_lock_timeout``: with a timeout shorter than one
    piece's fetch, the waiting requests go to the origin themselves (uncached)."""
    data = payload(2 << 20, seed=7)
    _publish(origin, cli, {"slow": data})
    release = threading.Event()
    origin.fault("/zoo/onnx/slow.bin", Fault.stall(1 << 20, release))
    documented = documented_config()
    assert "proxy_cache_lock_timeout 10m;" in documented
    short = documented.replace("proxy_cache_lock_timeout 10m;", "proxy_cache_lock_timeout 1s;")
    binary = find_nginx()
    assert binary is not None
    answers: list[bytes] = []

    def fetch(url: str) -> None:
        answers.append(requests.get(url, timeout=60).content)

    with CachingProxy(binary, origin.url, tmp_path / "nginx", block=short) as proxy:
        url = f"{proxy.url}/zoo/onnx/slow.bin"
        clients = [threading.Thread(target=fetch, args=(url,)) for _ in range(4)]
        for client in clients:
            client.start()
            time.sleep(0.1)  # the first holds the lock; the others wait on it
        time.sleep(2.5)  # longer than the timeout: the waiters went to the origin
        release.set()
        for client in clients:
            client.join(timeout=60)
    assert answers == [data] * 4
    assert len(origin.requests_for("/zoo/onnx/slow.bin")) == 4
