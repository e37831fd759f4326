"""A private CA, as behind a corporate proxy: the standard variables make it trusted, and a
certificate failure says which variables to set. Real certificates (openssl CLI), a real
https server on loopback."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from omnihub.download._http import CA_VARIABLES
from omnihub.errors import DownloadError
from omnihub.hub import fetch

from tests.runtime.helpers import entry, payload

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
DATA = payload(50_000, seed=5)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; a hashed CA directory."""
    d = tmp_path_factory.mktemp("pki")
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


@pytest.fixture
def https_url(pki: Path) -> Iterator[str]:
    """An https server on 127.0.0.1 serving DATA at /zoo/samediff/model.fb."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/zoo"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, https_url: str) -> Path:
    for name in (*CA_VARIABLES, "HTTPS_PROXY", "https_proxy", "OMNIHUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNIHUB_URL", https_url)
    monkeypatch.setenv("OMNIHUB_RETRIES", "0")
    monkeypatch.setenv("OMNIHUB_DISABLE_PROGRESS", "1")
    return tmp_path / "home"


def test_an_untrusted_certificate_names_the_variables_to_set(home: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch(entry(data=DATA))
    message = str(caught.value)
    assert "certificate verify failed" in message
    assert "SSL_CERT_FILE" in message
    assert "REQUESTS_CA_BUNDLE" in message
    assert "SSL_CERT_DIR" in message
    assert not (home / "samediff" / "model.fb").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SSL_CERT_FILE", "ca.pem"),
        ("SSL_CERT_DIR", "certs"),
        ("REQUESTS_CA_BUNDLE", "ca.pem"),
        ("CURL_CA_BUNDLE", "ca.pem"),
    ],
)
def test_the_standard_variables_trust_a_private_ca(
    home: Path, pki: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, str(pki / value))
    assert fetch(entry(data=DATA)).read_bytes() == DATA


def test_a_wrong_bundle_is_named_in_the_error(
    home: Path, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "server.pem"))  # not the CA
    with pytest.raises(DownloadError, match=r"trusting .*server\.pem"):
        fetch(entry(data=DATA))
