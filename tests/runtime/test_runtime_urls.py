"""Model URLs and cache paths: exact round trips and names that can never escape the home."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub.errors import ConfigurationError
from omnihub.urls import (
    RESERVED_SUFFIXES,
    build_hf_url,
    build_model_url,
    cache_path,
    check_base_url,
    check_remote_url,
    is_loopback,
    parse_hf_url,
    parse_model_url,
    redact_url,
    split_name,
)

_forbidden = set("/\\:\x7f") | {chr(c) for c in range(32)}
_segment = (
    st.text(
        alphabet=st.characters(
            blacklist_characters="".join(_forbidden), blacklist_categories=["Cs"]
        ),
        min_size=1,
        max_size=30,
    )
    .filter(lambda s: s.strip(". ") != "")
    .filter(lambda s: len(s.encode()) <= 200)
)
_tricky = st.sampled_from(
    ["a b", "100%", "x#y", "q?z", "ünï", "日本", "a%2Fb", "%", "#", "~x", "+"]
)
_any_segment = _tricky | _segment
file_names = (
    st.lists(_any_segment, min_size=1, max_size=3)
    .map("/".join)
    .filter(lambda f: not f.endswith(RESERVED_SUFFIXES))
)
frameworks = _any_segment.filter(lambda f: not f.endswith(RESERVED_SUFFIXES))

_hosts = st.sampled_from(
    ["example.com", "127.0.0.1", "[::1]", "[2001:db8::7]", "mirror.example.org", "localhost"]
)
_ports = st.sampled_from(["", ":8080", ":443", ":1"])
_prefixes = st.sampled_from(["", "/zoo", "/media/KonduitAI/omnihub-zoo/main", "/a%20b/c"])
_slashes = st.sampled_from(["", "/", "//"])
base_urls = st.builds(
    lambda scheme, host, port, prefix, slash: f"{scheme}://{host}{port}{prefix}{slash}",
    st.sampled_from(["https", "http"]),
    _hosts,
    _ports,
    _prefixes,
    _slashes,
)


@given(base_urls, frameworks, file_names)
def test_model_url_round_trips(base: str, framework: str, file: str) -> None:
    url = build_model_url(base, framework, file)
    assert parse_model_url(url, base) == (framework, file)
    assert "#" not in url.split("://", 1)[1].split("/", 1)[1]  # the fragment marker is encoded
    assert " " not in url
    assert "?" not in url


@given(base_urls, st.sampled_from(["org/model", "model", "a-b/c.d"]), _any_segment, file_names)
def test_hf_url_round_trips(base: str, repo: str, revision: str, file: str) -> None:
    url = build_hf_url(base, repo, revision, file)
    assert "/resolve/" in url
    assert parse_hf_url(url, base) == (repo, revision, file)


def test_hf_url_layout() -> None:
    url = build_hf_url("https://huggingface.co/", "org/m", "refs/pr/1", "q4/model Q4.gguf")
    assert url == "https://huggingface.co/org/m/resolve/refs%2Fpr%2F1/q4/model%20Q4.gguf"


def test_model_url_layout_matches_dl4j() -> None:
    base = "https://media.githubusercontent.com/media/KonduitAI/omnihub-zoo/main"
    assert build_model_url(base + "/", "samediff", "resnet18.fb") == f"{base}/samediff/resnet18.fb"


@given(frameworks, file_names)
def test_cache_path_stays_inside_home_posix_and_windows(framework: str, file: str) -> None:
    for home in (PurePosixPath("/home/u/.omnihub"), PureWindowsPath("C:/Users/u/.omnihub")):
        path = cache_path(home, framework, file)
        relative = path.relative_to(home)
        assert ".." not in relative.parts
        assert not relative.is_absolute()
        assert not relative.drive
        assert relative.parts == (framework, *file.split("/"))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "..",
        "../x",
        "a/../../b",
        "/etc/passwd",
        "a//b",
        "a/",
        "a\\b",
        "..\\x",
        "C:x",
        "c:/x",
        "a\x00b",
        "line\nbreak",
        ". .",
        "...",
        "x" * 201,
        "m.fb.incomplete",
        "m.fb.lock",
        "m.fb.omnihub.json",
    ],
)
def test_bad_file_names_are_rejected_with_the_name(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="file name"):
        cache_path(PurePosixPath("/h"), "samediff", bad)
    with pytest.raises(ConfigurationError):
        build_model_url("https://h", "samediff", bad)


@pytest.mark.parametrize("bad", ["", "..", "a/b", "C:", "x\\y", "."])
def test_bad_framework_names_are_rejected(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="framework"):
        cache_path(PureWindowsPath("C:/h"), bad, "m.fb")


def test_split_name_returns_segments() -> None:
    assert split_name("a/b c/d%.fb") == ("a", "b c", "d%.fb")


def test_parse_rejects_foreign_and_malformed_urls() -> None:
    with pytest.raises(ConfigurationError, match="not under"):
        parse_model_url("https://other/samediff/m.fb", "https://h/zoo")
    with pytest.raises(ConfigurationError, match="invalid percent-encoding"):
        parse_model_url("https://h/zoo/samediff/%ff", "https://h/zoo")
    with pytest.raises(ConfigurationError, match="file name"):
        parse_model_url("https://h/zoo/samediff/..%2F..%2Fetc", "https://h/zoo")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/m", True),
        ("http://127.0.0.1:9/m", True),
        ("http://127.9.9.9/m", True),
        ("http://[::1]:80/m", True),
        ("http://localhost/m", True),
        ("http://example.com/m", False),
        ("http://10.0.0.1/m", False),
        ("ftp://example.com/m", False),
        ("file:///tmp/m", False),
        ("https:///nohost", False),
    ],
)
def test_transport_policy(url: str, ok: bool) -> None:
    if ok:
        assert check_remote_url(url, allow_http=False, allow_file=False) == url
    else:
        with pytest.raises(ConfigurationError):
            check_remote_url(url, allow_http=False, allow_file=False)


def test_transport_opt_ins() -> None:
    assert check_remote_url("http://example.com/m", allow_http=True, allow_file=False)
    assert check_remote_url("file:///tmp/m", allow_http=False, allow_file=True)
    assert check_base_url("file:///srv/zoo/", allow_http=False) == "file:///srv/zoo"
    with pytest.raises(ConfigurationError, match="query"):
        check_base_url("https://h/zoo?x=1", allow_http=False)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("LOCALHOST")
    assert not is_loopback("127.example.com")
    assert not is_loopback(None)
    assert not is_loopback("")


def test_redaction_hides_credentials_and_queries() -> None:
    shown = redact_url("https://user:s3cret@host/p?token=abc")
    assert "s3cret" not in shown
    assert "abc" not in shown
    assert "host/p" in shown
