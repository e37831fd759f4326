"""Transport hardening (issue 15, items 1, 2, 3, 6, 8): parser mismatches, passwords in
mirror URLs, file:// mirrors that are not plain files, unrequested gzip, and slow drips.

Every test talks to a real server on 127.0.0.1 (another origin on 127.0.0.2) or reads real
files; each one failed on the code before its fix.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub.cli._main import main
from omnihub.config import resolve
from omnihub.download import download
from omnihub.errors import (
    ConfigurationError,
    DownloadError,
    IntegrityError,
    OmnihubError,
)
from omnihub.urls import check_base_url, check_remote_url, redact_url
from urllib3.util import parse_url

from tests.reliability._support import HostServer
from tests.runtime.fault_server import Fault
from tests.runtime.helpers import REPO, Env, child_env, payload, sha256

TOKEN = "hf_TRANSPORTsecret0123456789abcdef"
PASSWORD_PARTS = ("s3cr", "et#pa", "ss/wo", "rd")

# -- item 1: one parse for every origin and policy decision ------------------------------------


def _bearer_requests(srv: HostServer) -> list[str]:
    return [r.path for r in srv.log if "authorization" in r.headers]


def test_backslash_redirect_does_not_carry_the_token_to_another_host(
    env: Env, server: HostServer, other_server: HostServer
) -> None:
    """``Location: http://B\\@A/x``: urlsplit reads host A (same origin), urllib3 connects
    to B. The token must never reach B, and the error must name B."""
    data = payload(5000)
    server.add("/zoo/samediff/m.fb", data)
    other_server.add("/x", data)
    a_port = server.url.rsplit(":", 1)[1]
    b_netloc = other_server.url.removeprefix("http://")
    trick = f"http://{b_netloc}\\@127.0.0.1:{a_port}/zoo/samediff/m.fb"
    server.fault("/zoo/samediff/m.fb", Fault.redirect(trick))
    with pytest.raises(OmnihubError) as caught:
        download(
            server.url + "/zoo/samediff/m.fb",
            env.home / "m.fb.incomplete",
            config=resolve(),
            private_headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert _bearer_requests(other_server) == []
    assert other_server.log == []  # refused before any connection to B
    assert b_netloc in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_backslash_catalogue_url_is_refused_before_any_request(
    env: Env, server: HostServer, other_server: HostServer
) -> None:
    a_port = server.url.rsplit(":", 1)[1]
    url = f"{other_server.url}\\@127.0.0.1:{a_port}/zoo/samediff/m.fb"
    with pytest.raises(ConfigurationError, match="backslash") as caught:
        download(
            url,
            env.home / "m.fb.incomplete",
            config=resolve(),
            private_headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert other_server.log == []
    assert server.log == []
    assert other_server.url.removeprefix("http://") in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example:80\\@127.0.0.1/m.fb",
        "http://evil.example\\@localhost/m.fb",
        "http://evil.example:80\t@127.0.0.1/m.fb",
        "http://evil.example:80 @127.0.0.1/m.fb",
        "http://evil.example:80\\@[::1]:80/m.fb",
        "http://evil.exam\u0440le@127.0.0.1/m.fb",
        "https://evil.example\\@huggingface.co/m.fb",
    ],
)
def test_ambiguous_urls_never_pass_the_loopback_rule(url: str) -> None:
    """Plain http to a remote host hidden behind an ambiguity is refused, naming that host."""
    with pytest.raises(ConfigurationError) as caught:
        check_remote_url(url, allow_http=False, allow_file=False)
    # The host urllib3 connects to is the one named (for a backslash, the attacker's).
    assert f"{parse_url(url).host}" in str(caught.value)
    with pytest.raises(ConfigurationError):
        check_base_url(url.rsplit("/", 1)[0], allow_http=True)


_noise = st.sampled_from(["\\", "\t", " ", "\n", "\r", "\x00", "\x7f", "\u00a0", "\u3000"])


@settings(max_examples=300, deadline=None)
@given(
    noise=_noise,
    where=st.integers(0, 60),
    port=st.integers(1, 65535),
    path=st.from_regex(r"(/[a-z0-9@:._-]{1,8}){0,3}", fullmatch=True),
)
def test_an_accepted_url_has_one_host_for_every_parser(
    noise: str, where: int, port: int, path: str
) -> None:
    """Property: whatever URL ``check_remote_url`` accepts, urllib3 (the client) connects to
    the host the policy judged; with an ambiguous character anywhere, it is refused."""
    from urllib.parse import urlsplit

    base = f"http://evil.example:{port}@127.0.0.1:{port}{path}"
    url = base[:where] + noise + base[where:]
    try:
        check_remote_url(url, allow_http=False, allow_file=False)
    except ConfigurationError:
        return
    parsed = parse_url(url)
    assert parsed.host == urlsplit(url).hostname
    assert parsed.host is not None
    assert parsed.host.startswith("127.")


# -- item 2: passwords in mirror URLs ----------------------------------------------------------


def _password_url(server_netloc: str) -> str:
    return f"http://user:{''.join(PASSWORD_PARTS)}@{server_netloc}/zoo"


def _no_password_piece(text: str) -> None:
    for piece in ("s3cret", "et#pass", "ss/word", "secret", "".join(PASSWORD_PARTS)):
        assert piece not in text, text


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cret#pass/word@mirror.example/zoo",
        "https://user:s3cret/pass#word@mirror.example/zoo",
        "https://user:s3cret?pass@mirror.example/zoo",
        "https://user:s3cret/pass",
        "https://user:s3cret@mirror.example:99999/zoo",
        "https://user:s3cret@mirror.example:12ab/zoo",
    ],
)
def test_passwords_with_delimiters_are_redacted_in_errors(url: str) -> None:
    _no_password_piece(redact_url(url))
    with pytest.raises(ConfigurationError) as caught:
        check_base_url(url, allow_http=False)
    _no_password_piece(str(caught.value))


@pytest.mark.parametrize("offline", [False, True])
def test_doctor_without_network_hides_mirror_passwords(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offline: bool
) -> None:
    netloc = env.server.url.removeprefix("http://")
    good = f"http://user:plainSECRETpw@{netloc}/zoo"
    broken = _password_url(netloc)
    monkeypatch.setenv("OMNIHUB_URL", f"{good} {broken}")
    monkeypatch.setenv("HF_ENDPOINT", f"https://hfuser:hfSECRETpw@{netloc}/hf")
    if offline:
        monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    args = ["doctor"] if offline else ["doctor", "--no-network"]
    for fmt in ([], ["--json"]):
        main([*args, *fmt])
        out = capsys.readouterr().out
        assert "plainSECRETpw" not in out
        assert "hfSECRETpw" not in out
        _no_password_piece(out)
        assert netloc in out
    assert env.server.log == []


def test_download_error_with_a_slash_in_the_password_names_no_password(env: Env) -> None:
    netloc = env.server.url.removeprefix("http://")
    url = _password_url(netloc) + "/samediff/m.fb"
    with pytest.raises(OmnihubError) as caught:
        download(url, env.home / "m.incomplete", config=resolve())
    _no_password_piece(str(caught.value))


# -- item 3: file:// mirrors obey the download rules -------------------------------------------

_LOCAL_CHILD = """
import json, resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
from omnihub.config import resolve
from omnihub.download import download
from omnihub.errors import OmnihubError
url, partial = sys.argv[1], Path(sys.argv[2])
try:
    download(url, partial, config=resolve(), allow_file=True)
    print(json.dumps({"error": None, "size": partial.stat().st_size}))
except OmnihubError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                      "partial": partial.exists()}))
"""


def _copy_in_child(url: str, partial: Path) -> dict[str, object]:
    """Copy ``url`` in a child bounded to 64 MiB files and 30 s (the old code hung)."""
    proc = subprocess.run(
        [sys.executable, "-c", _LOCAL_CHILD, url, str(partial)],
        cwd=REPO,
        env=child_env(None),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "directory"])
def test_file_mirror_refuses_what_is_not_a_regular_file(tmp_path: Path, target: str) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    if target == "fifo":
        os.mkfifo(tmp_path / "pipe")
        source = tmp_path / "pipe"
    elif target == "directory":
        source = tmp_path / "dir"
        source.mkdir()
    else:
        source = Path(target)
    (mirror / "m.fb").symlink_to(source)
    partial = tmp_path / "out" / "m.fb.incomplete"
    partial.parent.mkdir()
    started = time.monotonic()
    result = _copy_in_child((mirror / "m.fb").as_uri(), partial)
    assert time.monotonic() - started < 20
    assert result["error"] == "DownloadError", result
    assert "not a regular file" in str(result["message"])
    assert str(mirror / "m.fb") in str(result["message"])
    assert result["partial"] is False


def test_file_mirror_copy_of_a_private_file_stays_private(env: Env, tmp_path: Path) -> None:
    private = tmp_path / "secret.bin"
    private.write_bytes(payload(3000))
    private.chmod(0o600)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "m.fb").symlink_to(private)
    partial = env.home / "m.fb.incomplete"
    env.home.mkdir(parents=True)
    done = download((mirror / "m.fb").as_uri(), partial, config=resolve(), allow_file=True)
    assert done.sha256 == sha256(payload(3000))
    mode = stat.S_IMODE(partial.stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_file_mirror_copy_is_bounded_by_the_catalogue_size(env: Env, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(payload(200_000))
    env.home.mkdir(parents=True)
    partial = env.home / "m.fb.incomplete"
    with pytest.raises(IntegrityError, match="expected 1000"):
        download(source.as_uri(), partial, config=resolve(), allow_file=True, expected_size=1000)
    assert not partial.exists()


# -- item 6: a content encoding nobody asked for --------------------------------------------------


def test_unrequested_gzip_with_content_length_is_decoded_and_verified(
    env: Env, server: HostServer
) -> None:
    data = payload(300_000)
    server.add("/zoo/samediff/m.fb", data)
    server.fault("/zoo/samediff/m.fb", Fault.encoded(gzip.compress(data), sized=True))
    partial = env.home / "m.fb.incomplete"
    env.home.mkdir(parents=True)
    done = download(
        server.url + "/zoo/samediff/m.fb",
        partial,
        config=resolve(),
        expected_size=len(data),
        expected_sha256=sha256(data),
    )
    assert (done.size, done.sha256) == (len(data), sha256(data))
    assert partial.read_bytes() == data
    (asked,) = server.requests_for("/zoo/samediff/m.fb")
    assert asked.headers["accept-encoding"] == "identity"


def test_gzip_of_the_wrong_file_names_the_decoded_size(env: Env, server: HostServer) -> None:
    data = payload(50_000)
    server.add("/zoo/samediff/m.fb", data)
    server.fault("/zoo/samediff/m.fb", Fault.encoded(gzip.compress(data[:20_000]), sized=True))
    env.home.mkdir(parents=True)
    with pytest.raises(IntegrityError) as caught:
        download(
            server.url + "/zoo/samediff/m.fb",
            env.home / "m.fb.incomplete",
            config=resolve(),
            expected_size=len(data),
        )
    assert "size 20000 bytes, expected 50000" in str(caught.value)
    assert "announces" not in str(caught.value)


@pytest.mark.parametrize("sized", [True, False])
def test_gzip_bomb_without_a_declared_size_stops_at_the_size_bound(
    env: Env, server: HostServer, monkeypatch: pytest.MonkeyPatch, sized: bool
) -> None:
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KiB
    server.add("/zoo/samediff/m.fb", b"x")
    server.fault("/zoo/samediff/m.fb", Fault.encoded(bomb, sized=sized))
    monkeypatch.setenv("OMNIHUB_MAX_SIZE", str(4 << 20))
    env.home.mkdir(parents=True)
    partial = env.home / "m.fb.incomplete"
    with pytest.raises(DownloadError, match="size bound") as caught:
        download(server.url + "/zoo/samediff/m.fb", partial, config=resolve())
    assert "gzip" in str(caught.value)
    assert not partial.exists()


def test_an_encoding_that_cannot_be_decoded_is_refused(env: Env, server: HostServer) -> None:
    server.add("/zoo/samediff/m.fb", b"x")
    server.fault("/zoo/samediff/m.fb", Fault.encoded(b"\x00garbled" * 100, "x-custom"))
    env.home.mkdir(parents=True)
    with pytest.raises(DownloadError, match="x-custom"):
        download(server.url + "/zoo/samediff/m.fb", env.home / "m.incomplete", config=resolve())


# -- item 8: a server that drips ------------------------------------------------------------------


def _download_in_thread(url: str, partial: Path) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []
    config = resolve()

    def run() -> None:
        try:
            outcome.append(download(url, partial, config=config))
        except Exception as exc:  # the outcome under test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize(
    ("settings_", "expected"),
    [
        ({"OMNIHUB_MIN_RATE": "1000", "OMNIHUB_RATE_WINDOW": "0.5"}, "OMNIHUB_MIN_RATE=1000"),
        (
            {"OMNIHUB_MIN_RATE": "0", "OMNIHUB_ATTEMPT_DEADLINE": "1"},
            "OMNIHUB_ATTEMPT_DEADLINE=1",
        ),
    ],
)
def test_a_dripping_body_ends_in_a_clear_error(
    env: Env,
    server: HostServer,
    monkeypatch: pytest.MonkeyPatch,
    settings_: dict[str, str],
    expected: str,
) -> None:
    data = payload(5000)
    server.add("/zoo/samediff/m.fb", data)
    server.fault("/zoo/samediff/m.fb", *[Fault.drip(0.02)] * 3)  # 50 B/s, 100 s a body
    monkeypatch.setenv("OMNIHUB_RETRIES", "1")
    for name, value in settings_.items():
        monkeypatch.setenv(name, value)
    env.home.mkdir(parents=True)
    started = time.monotonic()
    thread, outcome = _download_in_thread(server.url + "/zoo/samediff/m.fb", env.home / "m.inc")
    thread.join(20)
    assert not thread.is_alive(), "a dripping body was still being read after 20 s"
    (error,) = outcome
    assert isinstance(error, DownloadError), error
    assert expected in str(error)
    assert "failed after 2 attempts" in str(error)
    assert time.monotonic() - started < 10


def test_dripping_headers_end_in_a_clear_error(
    env: Env, server: HostServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/zoo/samediff/m.fb", payload(100))
    server.fault("/zoo/samediff/m.fb", *[Fault.drip_headers(0.1)] * 3)  # ~10 s of headers
    monkeypatch.setenv("OMNIHUB_RETRIES", "1")
    monkeypatch.setenv("OMNIHUB_RATE_WINDOW", "0.5")
    env.home.mkdir(parents=True)
    started = time.monotonic()
    thread, outcome = _download_in_thread(server.url + "/zoo/samediff/m.fb", env.home / "m.inc")
    thread.join(25)
    assert not thread.is_alive()
    (error,) = outcome
    assert isinstance(error, DownloadError), error
    assert "response headers within OMNIHUB_RATE_WINDOW=0.5 s" in str(error)
    assert time.monotonic() - started < 5


def test_doctor_shows_the_liveness_settings(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIHUB_MIN_RATE", "2048")
    main(["doctor", "--no-network", "--json"])
    shown = {s["name"]: s for s in json.loads(capsys.readouterr().out)["settings"]}
    assert shown["min_rate"] == {
        "name": "min_rate",
        "value": "2048",
        "source": "environment (OMNIHUB_MIN_RATE)",
    }
    for name in ("rate_window", "attempt_deadline", "max_size"):
        assert shown[name]["source"] == "default"
