"""Test infrastructure for TLS: a private CA made with the openssl CLI, and the fault server
served over https with a certificate it signed (as an internal mirror behind a corporate CA)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from omnihub.catalog import ModelEntry
from omnihub.errors import DownloadError
from omnihub.hub import fetch

from tests.runtime.fault_server import FaultServer

__all__ = ["download_error", "https_fault_server", "make_pki", "needs_openssl"]

#: Mark for tests that make certificates: skipped, with the reason, without the openssl CLI.
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> Path:
    """In ``d``: a CA (``ca.pem``), a server certificate for 127.0.0.1 signed by it
    (``server.pem``/``server.key``) and a hashed CA directory (``certs/``). Returns ``d``."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=omnihub test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
             cwd=d)  # fmt: skip
    (d / "certs").mkdir()
    shutil.copy(d / "ca.pem", d / "certs" / "ca.pem")
    _openssl("rehash", "certs", cwd=d)
    return d


@contextmanager
def https_fault_server(pki: Path) -> Iterator[tuple[FaultServer, str]]:
    """A started :class:`FaultServer` speaking https with ``pki``'s server certificate;
    yields it and its ``https://127.0.0.1:<port>`` base URL."""
    server = FaultServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    # The fault server has no TLS switch: wrap its listening socket before it serves.
    inner = server._server  # our own test server (private to tests/runtime)
    inner.socket = context.wrap_socket(inner.socket, server_side=True)
    with server:
        yield server, server.url.replace("http://", "https://", 1)


def download_error(model: ModelEntry) -> str:
    """The message of the :class:`DownloadError` fetching ``model`` raises, checked to be
    one line (a user reads it in a terminal)."""
    with pytest.raises(DownloadError) as caught:
        fetch(model)
    message = str(caught.value)
    assert "\n" not in message
    return message
