"""Run the nginx pull-through cache of docs/cluster.md on loopback, for tests and benchmarks.

:func:`documented_config` extracts the configuration block docs/cluster.md shows;
:func:`localize` points it at a loopback origin, a free port and a private cache directory
(each replacement must apply, so the test breaks when the documentation drifts);
:class:`CachingProxy` runs it in a private nginx (configuration, pid, logs and temp paths in
one directory; foreground, one process we start and stop).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from benchmarks.servers import find_tool, nginx_config, wait_listening

__all__ = ["CachingProxy", "documented_config", "find_nginx", "localize"]

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cluster.md"
_MARKER = "<!-- cluster:nginx-config"
ZOO_UPSTREAM = "https://media.githubusercontent.com/media/KonduitAI/omnihub-zoo/main/"
HF_UPSTREAM = "https://huggingface.co/"

_HTTP = """\
log_format cluster '$uri $status $body_bytes_sent $upstream_cache_status "$http_range"';
access_log {tmp}/access.log cluster;
include {tmp}/omnihub.conf;
"""


def find_nginx() -> Path | None:
    """nginx on PATH or in /usr/sbin, else None."""
    return find_tool("nginx")


def documented_config(doc: Path = DOC) -> str:
    """The ```nginx block that follows the cluster:nginx-config marker in docs/cluster.md."""
    text = doc.read_text(encoding="utf-8")
    start = text.index(_MARKER)
    match = re.search(r"```nginx\n(.*?)```", text[start:], re.DOTALL)
    if match is None:
        raise ValueError(f"{doc}: no ```nginx block after {_MARKER}")
    return match.group(1)


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise ValueError(f"docs/cluster.md's nginx block no longer contains {old!r}")
    return text.replace(old, new)


def localize(block: str, *, origin: str, port: int, cache: Path) -> str:
    """The documented block with loopback upstreams, ``127.0.0.1:port`` and ``cache``."""
    block = _replace(block, ZOO_UPSTREAM, f"{origin}/zoo/")
    block = _replace(block, HF_UPSTREAM, f"{origin}/hf/")
    block = _replace(block, "listen 8080;", f"listen 127.0.0.1:{port};")
    block = _replace(block, "/var/cache/nginx/omnihub", str(cache))
    ca = "/etc/ssl/certs/ca-certificates.crt"
    if not Path(ca).is_file():  # only used for https upstreams, which the test has none of
        block = _replace(block, f"proxy_ssl_trusted_certificate {ca};", "")
    return block


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CachingProxy:
    """The documented caching proxy in front of ``origin``, in a private nginx."""

    def __init__(self, binary: Path, origin: str, tmp: Path, block: str | None = None) -> None:
        self.binary, self.origin, self.tmp = binary, origin, tmp
        self.block = documented_config() if block is None else block
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[list[str]]:
        """Each logged request: uri, status, body bytes, cache status, range."""
        path = self.tmp / "access.log"
        if not path.exists():
            return []
        return [line.split(" ", 4) for line in path.read_text().splitlines() if line]

    def start(self) -> CachingProxy:
        """Write the configuration and start nginx on a free port (a few attempts)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        errors = ""
        for _ in range(5):
            self.port = _free_port()
            conf = localize(
                self.block, origin=self.origin, port=self.port, cache=self.tmp / "cache"
            )
            (self.tmp / "omnihub.conf").write_text(conf)
            (self.tmp / "nginx.conf").write_text(
                nginx_config(self.tmp, _HTTP.format(tmp=self.tmp), connections=4096)
            )
            stderr = (self.tmp / "stderr.log").open("wb")
            self._proc = subprocess.Popen(
                [str(self.binary), "-p", str(self.tmp), "-c", str(self.tmp / "nginx.conf")],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
            stderr.close()
            if self._ready(time.monotonic() + 10):
                return self
            self.stop()
            errors = (self.tmp / "stderr.log").read_text(errors="replace")
        raise RuntimeError(f"nginx did not start: {errors.strip()[-500:]}")

    def _ready(self, deadline: float) -> bool:
        assert self._proc is not None
        return wait_listening(self._proc, self.port, deadline)

    def stop(self) -> None:
        """Stop our nginx (SIGQUIT, then SIGKILL after 5 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGQUIT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> CachingProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
