"""Downloads through a real corporate proxy: tinyproxy on loopback, tunnelling (CONNECT) to an
https mirror whose certificate a private CA signed.

The proxy's own log proves the tunnel was used (or bypassed, with ``NO_PROXY``); the mirror's
log shows what reached it through the tunnel (a ``Range`` on resume). Credentials in
``HTTPS_PROXY`` authenticate to the proxy and never appear in an error or a log line. Skips,
with the reason, where tinyproxy is not installed (``.ci/run`` installs it with apt-get).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub import trust
from omnihub._enums import Framework
from omnihub.hub import fetch
from urllib3.exceptions import ProxyError

from benchmarks.servers import find_tool, free_port, wait_listening
from tests.cli.zoo import entry as zoo_entry
from tests.cli.zoo import pinned, write_catalog
from tests.runtime.fault_server import Fault, FaultServer
from tests.runtime.helpers import REPO, entry, payload
from tests.runtime.tls import download_error, https_fault_server, make_pki, needs_openssl

TINYPROXY = find_tool("tinyproxy")
pytestmark = [
    needs_openssl,
    pytest.mark.skipif(
        TINYPROXY is None,
        reason="needs tinyproxy (apt-get install tinyproxy; .ci/run installs it where it can)",
    ),
]
DATA = payload(300_000, seed=14)
PATH = "/zoo/samediff/model.fb"
USER, PASSWORD = "alice", "s3cret-Pr0xy-pass"
_NETWORK = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
            "NO_PROXY", "no_proxy", *trust.CA_VARIABLES)  # fmt: skip


@dataclass(frozen=True)
class Proxy:
    """A running tinyproxy: its port and its log (tinyproxy writes it line by line)."""

    port: int
    log: Path

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def tunnels(self) -> list[str]:
        """The CONNECT requests the proxy received (``CONNECT host:port``)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [
            line.partition("): ")[2].rsplit(" ", 1)[0] for line in lines if "): CONNECT " in line
        ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def mirror(pki: Path) -> Iterator[tuple[FaultServer, str]]:
    """The https mirror (a FaultServer: ranges, validators, scripted faults) serving DATA."""
    with https_fault_server(pki) as (server, base):
        server.add(PATH, DATA)
        yield server, base


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """Starts tinyproxy with extra configuration lines; stops every one it started."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> Proxy:
        assert TINYPROXY is not None
        for attempt in range(5):  # the free port may be taken before tinyproxy binds it
            port = free_port()
            conf = tmp_path / f"tinyproxy-{port}.conf"
            lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "LogLevel Info",
                     "MaxClients 20", "Allow 127.0.0.1", *extra]  # fmt: skip
            conf.write_text("\n".join(lines) + "\n")
            log = tmp_path / f"tinyproxy-{port}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [str(TINYPROXY), "-d", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
                )
            started.append(proc)
            if wait_listening(proc, port, time.monotonic() + 10):
                return Proxy(port, log)
            proc.terminate()
            proc.wait(10)
            assert attempt < 4, f"tinyproxy did not start: {log.read_text(errors='replace')}"
        raise AssertionError("unreachable")

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def proxy(env: Path, start_proxy: Callable[..., Proxy], monkeypatch: pytest.MonkeyPatch) -> Proxy:
    """A plain tinyproxy, named by HTTPS_PROXY (after ``env`` cleared the variables)."""
    started = start_proxy()
    monkeypatch.setenv("HTTPS_PROXY", started.url())
    return started


@pytest.fixture
def env(
    tmp_path: Path, pki: Path, mirror: tuple[FaultServer, str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """OMNIHUB_HOME in tmp_path, the mirror as OMNIHUB_URL, its CA through SSL_CERT_FILE."""
    for name in _NETWORK:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNIHUB_URL", mirror[1] + "/zoo")
    monkeypatch.setenv("OMNIHUB_RETRIES", "0")
    monkeypatch.setenv("OMNIHUB_DISABLE_PROGRESS", "1")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    return tmp_path / "home"


def _target(mirror: tuple[FaultServer, str]) -> str:
    return f"CONNECT 127.0.0.1:{mirror[1].rsplit(':', 1)[1]}"


def test_a_download_goes_through_the_proxy_tunnel(
    proxy: Proxy, mirror: tuple[FaultServer, str]
) -> None:
    assert fetch(entry(data=DATA)).read_bytes() == DATA
    assert proxy.tunnels() == [_target(mirror)]
    assert [r.status for r in mirror[0].requests_for(PATH)] == [200]


def test_no_proxy_bypasses_it(
    proxy: Proxy, mirror: tuple[FaultServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert fetch(entry(data=DATA)).read_bytes() == DATA
    assert proxy.tunnels() == []
    assert len(mirror[0].requests_for(PATH)) == 1


def test_proxy_credentials_authenticate_and_never_show(
    env: Path,
    mirror: tuple[FaultServer, str],
    start_proxy: Callable[..., Proxy],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    proxy = start_proxy(f"BasicAuth {USER} {PASSWORD}")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url(f"{USER}:wrong-{PASSWORD}"))
    message = download_error(entry(data=DATA))
    assert f"through the proxy http://127.0.0.1:{proxy.port} (HTTPS_PROXY)" in message
    assert "Tunnel connection failed: 401" in message  # tinyproxy's answer to a bad password
    assert PASSWORD not in message
    assert not mirror[0].requests_for(PATH)  # refused at the proxy: nothing reached the mirror

    monkeypatch.setenv("HTTPS_PROXY", proxy.url(f"{USER}:{PASSWORD}"))
    assert fetch(entry(data=DATA)).read_bytes() == DATA
    assert proxy.tunnels() == [_target(mirror)] * 2
    assert PASSWORD not in caplog.text
    assert caplog.records  # the debug log was captured (urllib3's connection lines)


def test_a_proxy_that_refuses_the_tunnel_is_named_in_one_line(
    env: Path, start_proxy: Callable[..., Proxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = start_proxy("ConnectPort 443")  # tinyproxy answers 403 to CONNECT elsewhere
    monkeypatch.setenv("https_proxy", proxy.url(f"{USER}:{PASSWORD}"))
    message = download_error(entry(data=DATA))
    assert f"through the proxy http://127.0.0.1:{proxy.port} (https_proxy)" in message
    assert "Tunnel connection failed: 403" in message
    assert "(after 1 attempts; NO_PROXY lists hosts to reach directly)" in message
    assert PASSWORD not in message


def test_a_proxy_that_is_down_is_named_in_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:{PASSWORD}@127.0.0.1:{port}")
    monkeypatch.setenv("OMNIHUB_RETRIES", "1")
    monkeypatch.setenv("OMNIHUB_BACKOFF", "0")
    started = time.monotonic()
    message = download_error(entry(data=DATA))
    assert time.monotonic() - started < 30
    assert f"through the proxy http://127.0.0.1:{port} (HTTPS_PROXY)" in message
    assert "Connection refused" in message
    assert "after 2 attempts" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text


def test_a_malformed_proxy_variable_is_named_without_its_credentials(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"{USER}:{PASSWORD}@127.0.0.1:3128")  # no scheme
    message = download_error(entry(data=DATA))
    assert "through the proxy http://127.0.0.1:3128 (HTTPS_PROXY)" in message
    assert "malformed" in message
    assert PASSWORD not in message


def test_a_download_resumes_through_the_proxy(
    proxy: Proxy, mirror: tuple[FaultServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHUB_RETRIES", "2")
    monkeypatch.setenv("OMNIHUB_BACKOFF", "0")
    big = payload(3 << 20, seed=15)  # above the size below which a download starts over
    mirror[0].add("/zoo/samediff/big.fb", big)
    mirror[0].fault("/zoo/samediff/big.fb", Fault.truncate(1_500_000))
    assert fetch(entry("big.fb", data=big)).read_bytes() == big
    served = mirror[0].requests_for("/zoo/samediff/big.fb")
    assert [r.status for r in served] == [0, 206]  # 0: the connection broke off mid-body
    assert served[1].range_start
    assert served[1].range_start > 0
    assert "if-range" in served[1].headers
    assert len(proxy.tunnels()) == 2  # a new tunnel for the resumed request


def test_the_documented_commands_work_through_the_proxy(
    tmp_path: Path,
    pki: Path,
    mirror: tuple[FaultServer, str],
    start_proxy: Callable[..., Proxy],
) -> None:
    """docs/runtime.md "Behind a corporate proxy / private CA": the same variables and the
    same ``omnihub download`` command, run as a user would."""
    proxy = start_proxy(f"BasicAuth {USER} {PASSWORD}")
    model = pinned(
        zoo_entry("corpnet", "corp", file="model.fb", framework=Framework.SAMEDIFF), DATA
    )
    site = tmp_path / "site"
    write_catalog(site, "corp", [model])
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OMNIHUB_", "HF_", "PYTHON")) and key not in _NETWORK
    }
    env.update(
        PYTHONPATH=str(site),
        OMNIHUB_HOME=str(tmp_path / "home"),
        OMNIHUB_URL=mirror[1] + "/zoo",
        SSL_CERT_FILE=str(pki / "ca.pem"),
        HTTPS_PROXY=proxy.url(f"{USER}:{PASSWORD}"),
        NO_PROXY="localhost,.corp.example",
    )
    result = subprocess.run(
        [sys.executable, "-m", "omnihub", "download", "corpnet"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "home" / "samediff" / "model.fb").read_bytes() == DATA
    assert proxy.tunnels() == [_target(mirror)]
    assert PASSWORD not in result.stdout + result.stderr


@settings(max_examples=60, deadline=None)
@given(
    user=st.text(
        st.characters(codec="ascii", exclude_categories=["Cc"], exclude_characters="@/:?#%\\"),
        min_size=1,
    ),
    secret=st.text(
        st.characters(codec="ascii", exclude_categories=["Cc"], exclude_characters="@/?#%\\"),
        min_size=1,
    ),
    port=st.integers(1, 65535),
)
def test_a_proxy_error_never_shows_the_credentials(user: str, secret: str, port: int) -> None:
    """Whatever the credentials, and even when the proxy echoes them in its answer."""
    password = f"PW-{secret}"
    proxy = f"http://{user}:{password}@127.0.0.1:{port}"
    echoed = ProxyError("Unable to connect to proxy", OSError(f"407 for {user}:{password}"))
    with pytest.MonkeyPatch.context() as patch:
        for name in _NETWORK:
            patch.delenv(name, raising=False)
        patch.setenv("HTTPS_PROXY", proxy)
        message = str(trust.proxy_error("m", "https://zoo.example/m.fb", echoed, 1))
    assert password not in message
    assert f"through the proxy http://127.0.0.1:{port} (HTTPS_PROXY)" in message
