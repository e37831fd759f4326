"""A private CA, as behind a corporate proxy: the standard variables make it trusted, the
operating system's trust store (truststore) does when the CA is installed system-wide, and a
certificate failure says which trust was used and which variables to set.

Real certificates (openssl CLI), a real https server on loopback. The system store is tested
for real on Linux, where truststore reads OpenSSL's default paths (``/etc/ssl/certs``): a child
process gets a private mount namespace (``unshare``, root only) in which a directory holding
the test CA is bind-mounted over ``/etc/ssl/certs`` -- the machine's own store is never
touched. Without that privilege those tests skip with the reason; macOS Keychain and the
Windows store are truststore's own, not exercised here.
"""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub import trust
from omnihub.errors import ConfigurationError, DownloadError
from omnihub.hub import fetch

from tests.runtime.helpers import REPO, child_env, entry, payload
from tests.runtime.tls import download_error, make_pki, needs_openssl

pytestmark = needs_openssl
DATA = payload(50_000, seed=5)
_PROXY_AND_TRUST = (*trust.CA_VARIABLES, trust.TRUSTSTORE_VARIABLE, "HTTPS_PROXY", "https_proxy")


def _has_truststore() -> bool:
    try:
        import truststore  # noqa: F401
    except ImportError:
        return False
    return True


needs_truststore = pytest.mark.skipif(
    not _has_truststore(), reason="needs the truststore package (pip install 'omnihub[truststore]')"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; a hashed CA directory."""
    return make_pki(tmp_path_factory.mktemp("pki"))


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
    for name in _PROXY_AND_TRUST:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNIHUB_URL", https_url)
    monkeypatch.setenv("OMNIHUB_RETRIES", "0")
    monkeypatch.setenv("OMNIHUB_DISABLE_PROGRESS", "1")
    return tmp_path / "home"


def test_an_untrusted_certificate_names_the_variables_to_set(home: Path) -> None:
    message = download_error(entry(data=DATA))
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
    with pytest.raises(DownloadError, match=r"trusting .*server\.pem \(SSL_CERT_FILE\)"):
        fetch(entry(data=DATA))


def test_with_truststore_off_the_error_says_certifi_and_how_to_use_the_system_store(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(trust.TRUSTSTORE_VARIABLE, "off")
    message = download_error(entry(data=DATA))
    assert f"trusting {trust.CERTIFI}" in message
    assert "omnihub[truststore]" in message
    assert trust.TRUSTSTORE_VARIABLE in message


@needs_truststore
def test_by_default_an_installed_truststore_is_used_and_named(home: Path) -> None:
    assert trust.current().context is not None
    message = download_error(entry(data=DATA))
    assert f"trusting {trust.SYSTEM}" in message
    assert "install that CA system-wide" in message
    assert "SSL_CERT_FILE" in message


@needs_truststore
def test_the_system_context_is_shared_and_not_reloaded_per_connection(
    home: Path, https_url: str
) -> None:
    """One truststore context (with certifi already in it) serves every pool: requests'
    per-connection certifi load (~16 ms a connection here) is skipped."""
    import requests
    from omnihub.config import resolve
    from omnihub.download._http import session
    from urllib3 import HTTPSConnectionPool

    download_error(entry(data=DATA))  # the test CA is not in this machine's store
    adapter = session(resolve()).get_adapter(https_url)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    request = requests.Request("GET", https_url + "/samediff/model.fb").prepare()
    pool = adapter.get_connection_with_tls_context(request, verify=True)  # the pool it used
    assert isinstance(pool, HTTPSConnectionPool)
    assert pool.num_connections == 1
    assert pool.conn_kw["ssl_context"] is trust.current().context
    assert pool.ca_certs is None


def test_an_explicit_bundle_replaces_the_system_store(
    home: Path, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(trust.TRUSTSTORE_VARIABLE, "1")
    monkeypatch.setenv("SSL_CERT_DIR", str(pki / "certs"))
    chosen = trust.current()
    assert chosen == trust.Trust(str(pki / "certs"), None, f"{pki / 'certs'} (SSL_CERT_DIR)")
    assert chosen.context is None


@pytest.mark.parametrize("value", ["maybe", "2", "system"])
def test_a_bad_truststore_switch_is_a_configuration_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(trust.TRUSTSTORE_VARIABLE, value)
    with pytest.raises(ConfigurationError, match=rf"{trust.TRUSTSTORE_VARIABLE}='{value}'"):
        fetch(entry(data=DATA))


_WITHOUT_TRUSTSTORE = """
import sys
sys.modules["truststore"] = None  # as if not installed: importing it raises ImportError
from omnihub import trust
from omnihub.errors import ConfigurationError
try:
    print(trust.current().source)
except ConfigurationError as exc:
    print("ConfigurationError:", exc)
"""


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ("auto", f"{trust.CERTIFI}\n"),
        ("on", "ConfigurationError: OMNIHUB_TRUSTSTORE asks for the system trust store"),
    ],
)
def test_without_truststore_auto_falls_back_to_certifi_and_on_is_refused(
    switch: str, expected: str
) -> None:
    env = {k: v for k, v in child_env().items() if k not in _PROXY_AND_TRUST}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TRUSTSTORE],
        env={**env, trust.TRUSTSTORE_VARIABLE: switch},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.startswith(expected)
    if switch == "on":
        assert "pip install 'omnihub[truststore]'" in result.stdout


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(trust.CA_VARIABLES), unique=True))
def test_the_first_ca_variable_set_wins(names: list[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name in trust.CA_VARIABLES:
            patch.delenv(name, raising=False)
        for name in names:
            patch.setenv(name, f"/bundles/{name}.pem")
        chosen = trust.current()
        first = next((n for n in trust.CA_VARIABLES if n in names), None)
        if first is None:
            assert chosen.verify is True
            assert chosen.source in (trust.SYSTEM, trust.CERTIFI)
        else:
            assert chosen.verify == f"/bundles/{first}.pem"
            assert chosen.context is None
            assert chosen.source.endswith(f"({first})")


# -- the system store itself, in a private mount namespace ------------------------------------

_CHILD = """
import json
from omnihub.errors import DownloadError
from omnihub.hub import fetch
from tests.runtime.helpers import entry, payload
data = payload(50_000, seed=5)
try:
    print(json.dumps({"ok": fetch(entry(data=data)).read_bytes() == data}))
except DownloadError as exc:
    print(json.dumps({"error": str(exc)}))
"""
_MOUNT = 'mount --bind "$1" /etc/ssl/certs && { [ -z "$2" ] || mount --bind "$2" "$3"; } && shift 3'


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or not Path("/etc/ssl/certs").is_dir():
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "t", "/mnt"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_namespace = pytest.mark.skipif(
    sys.platform != "linux" or not _unshare_works(),
    reason="installing a CA into the system store without touching this machine's needs a "
    "private mount namespace (Linux, root, unshare)",
)


def _in_namespace(
    store: Path, https_url: str, home: Path, env: dict[str, str], certifi_as: Path | None = None
) -> dict[str, object]:
    """Run _CHILD with ``store`` mounted over /etc/ssl/certs (and ``certifi_as`` over
    certifi's bundle); returns its JSON answer."""
    import certifi

    base = {k: v for k, v in child_env().items() if k not in _PROXY_AND_TRUST}
    base.update(
        OMNIHUB_HOME=str(home),
        OMNIHUB_URL=https_url,
        OMNIHUB_RETRIES="0",
        OMNIHUB_DISABLE_PROGRESS="1",
        **env,
    )
    command = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        f'{_MOUNT} && exec "$@"', "sh", str(store), str(certifi_as or ""), certifi.where(),
        sys.executable, "-c", _CHILD,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=base, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _store(pki: Path, root: Path, *, with_ca: bool) -> Path:
    """A stand-in /etc/ssl/certs: Debian's layout (a bundle and hashed links), or empty."""
    store = root / ("store" if with_ca else "empty-store")
    store.mkdir()
    if with_ca:
        shutil.copy(pki / "ca.pem", store / "ca-certificates.crt")
        shutil.copy(pki / "ca.pem", store / "corp-ca.pem")
        subprocess.run(["openssl", "rehash", str(store)], check=True, capture_output=True)
    return store


@needs_truststore
@needs_namespace
def test_a_ca_installed_system_wide_is_trusted_through_truststore(
    home: Path, pki: Path, tmp_path: Path, https_url: str
) -> None:
    store = _store(pki, tmp_path, with_ca=True)
    assert _in_namespace(store, https_url, tmp_path / "a", {}) == {"ok": True}
    # the same machine without the system store: certifi alone does not know the CA
    off = _in_namespace(store, https_url, tmp_path / "b", {trust.TRUSTSTORE_VARIABLE: "0"})
    assert f"trusting {trust.CERTIFI}" in str(off["error"])
    assert "omnihub[truststore]" in str(off["error"])
    # an explicit bundle wins over the system store, even a wrong one
    wrong = {"REQUESTS_CA_BUNDLE": str(pki / "server.pem")}
    named = _in_namespace(store, https_url, tmp_path / "c", wrong)
    assert "server.pem (REQUESTS_CA_BUNDLE)" in str(named["error"])


@needs_truststore
@needs_namespace
def test_a_slim_container_without_a_system_store_still_trusts_certifi(
    home: Path, pki: Path, tmp_path: Path, https_url: str
) -> None:
    """No ca-certificates (empty /etc/ssl/certs): the truststore context still holds
    certifi's bundle -- shown by a certifi bundle holding the test CA."""
    empty = _store(pki, tmp_path, with_ca=False)
    answer = _in_namespace(empty, https_url, tmp_path / "a", {}, certifi_as=pki / "ca.pem")
    assert answer == {"ok": True}
    # and the empty store alone (real certifi) does not trust the CA: the error says what was used
    alone = _in_namespace(empty, https_url, tmp_path / "b", {})
    assert f"trusting {trust.SYSTEM}" in str(alone["error"])


def test_the_machine_store_was_not_touched(pki: Path) -> None:
    """The namespace tests leave the real /etc/ssl/certs without the test CA."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not bundle.exists():
        pytest.skip("no /etc/ssl/certs/ca-certificates.crt on this machine")
    assert (pki / "ca.pem").read_text().strip() not in bundle.read_text()
