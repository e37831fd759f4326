"""Ctrl-C during a download: exit 130 at once, one line, the partial file kept for resume."""

from __future__ import annotations

import http.server
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from .conftest import Zoo

_STALL = threading.Event()


class _StallingHandler(http.server.BaseHTTPRequestHandler):
    """Announces a large body, sends a little of it, then stalls until released."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"\0" * 1024)
        self.wfile.flush()
        _STALL.wait(60)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stalling_server() -> Iterator[str]:
    _STALL.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StallingHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _STALL.set()
        server.shutdown()
        server.server_close()
        thread.join()


def test_ctrl_c_exits_130_with_one_line(zoo: Zoo, stalling_server: str) -> None:
    partial = zoo.cached("delta").with_name("delta.bin.incomplete")
    process = subprocess.Popen(
        [sys.executable, "-m", "omnihub", "download", "delta"],
        env={**zoo.cli.env, "OMNIHUB_URL": stalling_server, "OMNIHUB_READ_TIMEOUT": "60"},
        cwd=zoo.cli.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waited = threading.Event()
        while not partial.exists() and process.poll() is None:
            waited.wait(0.05)  # until the transfer has started (no timing assert)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr == "omnihub: interrupted\n"
    assert stdout == ""
    assert not zoo.cached("delta").exists()  # nothing unverified was published
