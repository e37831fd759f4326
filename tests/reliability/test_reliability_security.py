"""Security rules (issue 6), each with tests: transport policy, file:// only when configured,
names that cannot escape OMNIHUB_HOME, archives and pickles, and secrets kept out of logs
and error messages. docs/security.md maps each attacker to these tests.
"""

from __future__ import annotations

import ast
import logging
import ntpath
import os
import pickle
import posixpath
import socket
import traceback
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
import numpy as np
import omnihub
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub._enums import DEFAULT_OMNIHUB_URL, Format, Framework, ModelType
from omnihub.config import describe, resolve
from omnihub.errors import ConfigurationError, LoadError, ModelNotFoundError, OmnihubError
from omnihub.hub import fetch
from omnihub.loaders import load
from omnihub.urls import (
    build_model_url,
    cache_path,
    check_base_url,
    check_remote_url,
    parse_model_url,
)

from tests.loaders.helpers import make_entry, nd4j_write, write_zip
from tests.reliability._support import HostServer, listing
from tests.runtime.fault_server import Fault
from tests.runtime.helpers import Env, entry, payload

RUNTIME = Path(omnihub.__file__).resolve().parent
TOKEN = "hf_TESTsecretTOKEN0123456789abcdef"

# -- transport policy ------------------------------------------------------------------------------


def test_defaults_are_https(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMNIHUB_URL", "HF_ENDPOINT", "OMNIHUB_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    config = resolve()
    assert DEFAULT_OMNIHUB_URL.startswith("https://")
    assert all(url.startswith("https://") for url in config.urls)
    assert config.hf_endpoint.startswith("https://")
    assert config.allow_http is False


_remote_hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,12}\.(com|org|net|invalid|io)", fullmatch=True),
    st.ip_addresses(v=4).filter(lambda a: not a.is_loopback).map(str),
    st.ip_addresses(v=6).filter(lambda a: not a.is_loopback).map(lambda a: f"[{a}]"),
    st.sampled_from(
        [
            "127.0.0.1.evil.com",
            "localhost.evil.com",
            "evil.com#@127.0.0.1",
            "0x7f000001",
            "2130706433",
            "[::ffff:127.0.0.1]",
            "localhost@evil.com",
        ]
    ),
)
_loopback_hosts = st.one_of(
    st.sampled_from(["localhost", "LOCALHOST", "[::1]", "user:pw@127.0.0.1"]),
    st.tuples(*[st.integers(0, 255)] * 3).map(lambda t: "127.{}.{}.{}".format(*t)),
)


@settings(max_examples=200, deadline=None)
@given(host=_remote_hosts, path=st.from_regex(r"(/[a-z0-9._-]{1,8}){0,3}", fullmatch=True))
def test_plain_http_to_a_remote_host_needs_the_opt_in(host: str, path: str) -> None:
    url = f"http://{host}{path}"
    hostname = urlsplit(url).hostname
    with pytest.raises(ConfigurationError, match="plain http is allowed only to loopback"):
        check_remote_url(url, allow_http=False, allow_file=False)
    with pytest.raises(ConfigurationError):
        check_base_url(url, allow_http=False)
    # The explicit opt-in (OMNIHUB_ALLOW_HTTP=1) lets it through; https always passes.
    if hostname:
        assert check_remote_url(url, allow_http=True, allow_file=False) == url
        https = "https" + url[4:]
        assert check_remote_url(https, allow_http=False, allow_file=False) == https


@settings(max_examples=100, deadline=None)
@given(host=_loopback_hosts, port=st.integers(1, 65535))
def test_plain_http_to_loopback_is_allowed(host: str, port: int) -> None:
    url = f"http://{host}:{port}/zoo"
    assert check_remote_url(url, allow_http=False, allow_file=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/m.fb",
        "gopher://example.org/m.fb",
        "data:application/octet-stream;base64,AAAA",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "https:///no-host",
        "//example.org/m.fb",
        "example.org/m.fb",
    ],
)
def test_other_schemes_and_file_urls_are_refused_unless_configured(url: str) -> None:
    with pytest.raises(ConfigurationError):
        check_remote_url(url, allow_http=True, allow_file=False)


def _trap_connect(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) every outgoing connection attempt of this process."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("connection attempt in a test that must not connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize(
    ("variable", "value", "model_kw"),
    [
        ("OMNIHUB_URL", "http://zoo.example.invalid/zoo", {}),
        ("HF_ENDPOINT", "http://hub.example.invalid", {"hugging_face_id": "o/r"}),
        ("OMNIHUB_URL", "ftp://zoo.example.invalid/zoo", {}),
    ],
)
def test_insecure_configuration_fails_before_any_connection(
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    model_kw: dict[str, Any],
) -> None:
    monkeypatch.setenv(variable, value)
    if variable == "HF_ENDPOINT":
        model_kw = {**model_kw, "repository": "huggingface"}
    attempts = _trap_connect(monkeypatch)
    with pytest.raises(ConfigurationError) as info:
        fetch(entry(data=b"x", **model_kw))
    assert "example.invalid" in str(info.value)
    assert attempts == []
    assert not (env.home / "samediff" / "model.fb").exists()


def test_catalogue_url_cannot_be_plain_http_or_file(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"local secret")
    attempts = _trap_connect(monkeypatch)
    for url in ("http://models.example.invalid/m.fb", secret.as_uri()):
        with pytest.raises(ConfigurationError):
            fetch(entry(data=b"local secret", url=url, repository="url"))
    assert attempts == []
    assert listing(env.home / "samediff") in ([], ["model.fb.lock"])


def test_hugging_face_endpoint_cannot_read_local_files(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A file:// *zoo mirror* is an explicit configuration; a Hub endpoint is not a mirror."""
    mirror = tmp_path / "hub"
    target = mirror / "o" / "r" / "resolve" / "main" / "model.fb"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"local")
    monkeypatch.setenv("HF_ENDPOINT", mirror.as_uri())
    with pytest.raises(ConfigurationError, match="file://"):
        fetch(entry(data=b"local", repository="huggingface", hugging_face_id="o/r"))
    assert not (env.home / "samediff" / "model.fb").exists()


def test_configured_file_mirror_is_allowed(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "samediff").mkdir(parents=True)
    data = payload(1000, seed=80)
    (mirror / "samediff" / "model.fb").write_bytes(data)
    monkeypatch.setenv("OMNIHUB_URL", mirror.as_uri())
    attempts = _trap_connect(monkeypatch)
    assert fetch(entry(data=data)).read_bytes() == data
    assert attempts == []


# -- names never escape OMNIHUB_HOME ---------------------------------------------------------------

_HOSTILE_SEGMENTS = [
    "..",
    ".",
    "",
    "...",
    " ..",
    ".. ",
    "..\\",
    "\\..",
    "..\\..\\x",
    "C:",
    "c:x",
    "C:\\Windows",
    "\\\\server\\share",
    "\x00",
    "a\x00b",
    "~",
    "~root",
    "%2e%2e",
    "%2F",
    "..%2f",
    "\uff0e\uff0e",  # fullwidth dots
    "\u2025",  # two-dot leader
    "..\u2215x",  # division slash
    "\u2216",  # set minus (backslash lookalike)
    "CON",
    "a\nb",
    "\x7f",
    "x" * 256,
    "model.fb",
    "a.lock",
    "a.incomplete",
    "$HOME",
    "${OMNIHUB_HOME}",
]
_segments = st.one_of(st.sampled_from(_HOSTILE_SEGMENTS), st.text(max_size=12))
hostile_files = st.one_of(
    st.lists(_segments, min_size=1, max_size=4).map("/".join),
    st.lists(_segments, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
    st.lists(_segments, min_size=1, max_size=3).map("\\".join),
)
hostile_frameworks = st.one_of(_segments, hostile_files, st.sampled_from(list(Framework)))


def _inside(path: str, home: str, module: object) -> bool:
    normpath = module.normpath  # type: ignore[attr-defined]
    sep = module.sep  # type: ignore[attr-defined]
    return bool(normpath(path).startswith(normpath(home) + sep))


@settings(max_examples=400, deadline=None)
@given(framework=hostile_frameworks, file=hostile_files)
def test_hostile_names_never_leave_the_home_posix_and_windows(framework: object, file: str) -> None:
    for home, flavour, module in (
        (PurePosixPath("/srv/home"), "posix", posixpath),
        (PureWindowsPath("C:/Users/u/.omnihub"), "windows", ntpath),
    ):
        try:
            path = cache_path(home, str(framework), file)
        except ConfigurationError:
            continue
        assert _inside(str(path), str(home), module), (flavour, path)
        assert ".." not in path.parts
        assert path.parts[: len(home.parts)] == home.parts


@settings(max_examples=300, deadline=None)
@given(framework=hostile_frameworks, file=hostile_files)
def test_hostile_names_never_climb_in_urls(framework: object, file: str) -> None:
    base = "https://zoo.example.org/prefix"
    try:
        url = build_model_url(base, str(framework), file)
    except ConfigurationError:
        return
    assert url.startswith(base + "/")
    tail = url[len(base) + 1 :]
    for segment in tail.split("/"):
        # Neither raw nor once-decoded (as some servers do) is a dot segment or a separator.
        assert segment not in {"", ".", ".."}
        assert unquote(segment) not in {".", ".."}
        assert "/" not in unquote(segment) or "%2F" in segment.upper()
    assert urlsplit(url).query == ""
    assert urlsplit(url).fragment == ""
    assert parse_model_url(url, base) == (str(framework), file)


_homes = iter(range(10**9))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(framework=hostile_frameworks, file=hostile_files)
def test_hostile_catalogue_entries_through_fetch(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, framework: object, file: str
) -> None:
    """A ModelEntry straight from a hostile catalogue: typed error or a file inside the home;
    the server is only ever asked for paths under the zoo prefix."""
    home = env.home / f"h{next(_homes)}"  # each example its own home, all inside env.home
    monkeypatch.setenv("OMNIHUB_HOME", str(home))
    hostile: Any = framework  # deliberately not a Framework
    model = attrs.evolve(entry(data=b"m"), framework=hostile, file=file)
    try:
        path = fetch(model)
    except OmnihubError:
        pass
    else:  # pragma: no cover - the server has no such file
        assert _inside(str(path), str(home), os.path)
    assert all(r.path.startswith("/zoo/") for r in env.server.log)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["home"])


# -- archives and pickles --------------------------------------------------------------------------


class _Bomb:
    """Unpickling this creates ``marker``: proof that something unpickled data."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _dl4j_members() -> dict[str, bytes]:
    config = (
        b'{"confs": [{"layer": {"@class": "org.deeplearning4j.nn.conf.layers.DenseLayer",'
        b' "nin": 1, "nout": 1}}]}'
    )
    return {
        "configuration.json": config,
        "coefficients.bin": nd4j_write(np.zeros(2, dtype=np.float32)),
    }


@pytest.mark.parametrize(
    "member",
    [
        "coefficients.bin",
        "updaterState.bin",
        "normalizer.bin",
        "preprocessor.bin",
        "data.pkl",
        "archive/data.pkl",
    ],
)
@pytest.mark.parametrize("container", ["pickle", "npy"])
def test_pickle_inside_a_dl4j_zip_is_never_unpickled(
    tmp_path: Path, member: str, container: str
) -> None:
    marker = tmp_path / "unpickled"
    blob = pickle.dumps(_Bomb(marker))
    if container == "npy":  # an object-dtype .npy carries a pickle too
        path = tmp_path / "obj.npy"
        np.save(path, np.array([_Bomb(marker)], dtype=object), allow_pickle=True)
        blob = path.read_bytes()
    members = {**_dl4j_members(), member: blob}
    archive = write_zip(tmp_path / "model.zip", members)
    model = make_entry(Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL, file="model.zip")
    message = "model.zip"
    try:
        load(model, archive)
    except LoadError as exc:
        message = str(exc)
    assert "model.zip" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("fmt", "framework", "model_type", "name"),
    [
        (Format.SAMEDIFF, Framework.SAMEDIFF, ModelType.SAMEDIFF_PIPELINE, "m.fb"),
        (Format.ONNX, Framework.ONNX, ModelType.SAMEDIFF_PIPELINE, "m.onnx"),
        (Format.SAFETENSORS, Framework.SAMEDIFF, ModelType.SAMEDIFF_PIPELINE, "m.safetensors"),
        (Format.GGUF, Framework.SAMEDIFF, ModelType.SAMEDIFF_PIPELINE, "m.gguf"),
        (Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL, "m.zip"),
    ],
)
def test_a_pickle_or_torch_checkpoint_given_to_any_loader_is_refused(
    tmp_path: Path, fmt: Format, framework: Framework, model_type: ModelType, name: str
) -> None:
    marker = tmp_path / "unpickled"
    bomb = pickle.dumps(_Bomb(marker))
    for kind, data in (("pickle", bomb), ("torch", None)):
        path = tmp_path / f"{kind}-{name}"
        if data is None:  # the layout of a torch.save() checkpoint: a zip around data.pkl
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("archive/data.pkl", bomb)
                archive.writestr("archive/version", "3\n")
        else:
            path.write_bytes(data)
        with pytest.raises(LoadError):
            load(make_entry(fmt, framework, model_type, file=path.name), path)
    assert not marker.exists()


_UNPICKLERS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("torch", "load"),
    ("joblib", "load"),
    ("dill", "load"),
    ("dill", "loads"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
}
_UNPICKLING_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "joblib",
    "shelve",
    "marshal",
    "torch",
}


def _runtime_sources() -> list[Path]:
    return sorted(p for p in RUNTIME.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_runtime_module_can_unpickle() -> None:
    """An AST scan of every runtime module: no pickle-family import, no unpickling call, no
    ``allow_pickle=True``, no eval/exec, and TLS certificate checks never turned off."""
    sources = _runtime_sources()
    assert len(sources) > 20  # the scan really sees the package
    problems: list[str] = []
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        where = source.relative_to(RUNTIME.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            if names & _UNPICKLING_MODULES:
                problems.append(f"{where}:{getattr(node, 'lineno', 0)}: imports {sorted(names)}")
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in {"eval", "exec"}:
                problems.append(f"{where}:{node.lineno}: calls {func.id}")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in _UNPICKLERS
            ):
                problems.append(f"{where}:{node.lineno}: calls {func.value.id}.{func.attr}")
            for keyword in node.keywords:
                if (
                    keyword.arg == "verify"
                    and isinstance(keyword.value, ast.Constant)
                    and keyword.value.value is False
                ):
                    problems.append(f"{where}:{node.lineno}: TLS verification turned off")
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    problems.append(f"{where}:{node.lineno}: allow_pickle is not False")
    assert problems == []


def test_the_scan_would_catch_an_unpickler(tmp_path: Path) -> None:
    """The scan above is not vacuous: the same rules flag a module that unpickles."""
    bad = "import pickle\nimport numpy as np\nx = np.load('f', allow_pickle=True)\neval('1')\n"
    tree = ast.parse(bad)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(k.arg == "allow_pickle" for c in calls for k in c.keywords)
    assert any(isinstance(c.func, ast.Name) and c.func.id == "eval" for c in calls)
    assert any(isinstance(n, ast.Import) and n.names[0].name == "pickle" for n in ast.walk(tree))


# -- secrets never in logs or error messages -------------------------------------------------------


def _hf_model(file: str = "model.gguf", data: bytes = b"x") -> object:
    return entry(file, data=data, repository="huggingface", hugging_face_id="org/llm", name="llm")


def _scenarios(env: Env, other: HostServer) -> dict[str, object]:
    """name -> entry; each one fails in a different place of the download path."""
    prefix = "/hf/org/llm/resolve/main/"
    s = env.server
    data = payload(3000, seed=81)
    s.add(prefix + "flip.gguf", data)
    s.fault(prefix + "flip.gguf", Fault.flip(5))
    for code in (401, 403, 404, 500):
        s.add(prefix + f"s{code}.gguf", data)
        s.fault(prefix + f"s{code}.gguf", *[Fault.status(code)] * 6)
    s.add(prefix + "trunc.gguf", data)
    s.fault(prefix + "trunc.gguf", *[Fault.truncate(10)] * 6)
    s.add_redirect(prefix + "loop.gguf", prefix + "loop.gguf")
    s.add(prefix + "long.gguf", data)
    s.fault(prefix + "long.gguf", Fault.status(429, {"Retry-After": "99999"}))
    other.add("/cdn/x", b"wrong")
    s.add_redirect(prefix + "away.gguf", other.url + "/cdn/x")
    s.add("/hf/api/models/org/llm/revision/main", b"not json")
    s.add("/zoo/samediff/zoo.fb", data)
    s.fault("/zoo/samediff/zoo.fb", *[Fault.status(502)] * 6)
    return {
        "flip": _hf_model("flip.gguf", data),
        **{f"s{c}": _hf_model(f"s{c}.gguf", data) for c in (401, 403, 404, 500)},
        "trunc": _hf_model("trunc.gguf", data),
        "loop": _hf_model("loop.gguf", data),
        "long": _hf_model("long.gguf", data),
        "away": _hf_model("away.gguf", data),
        "listing": entry(
            "pat.gguf",
            data=data,
            repository="huggingface",
            hugging_face_id="org/llm",
            file_pattern="*.gguf",
        ),
        "zoo": entry("zoo.fb", data=data, repository="omnihub"),
    }


def test_token_never_appears_in_logs_or_errors(
    env: Env,
    other_server: HostServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sleeps: list[float],
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("OMNIHUB_URL", env.server.url.replace("//", f"//u:{TOKEN}@") + "/zoo")
    texts: list[str] = []
    failures = 0
    scenarios = _scenarios(env, other_server)
    with caplog.at_level(logging.DEBUG):
        for name, model in scenarios.items():
            try:
                fetch(model)  # type: ignore[arg-type]
            except OmnihubError as exc:
                failures += 1
                texts.append(f"{name}: {exc} {exc!r}")
                texts.append("".join(traceback.format_exception(exc)))
        # The token did reach the Hub itself (the scenarios are real), just nowhere else.
        assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in env.server.log)
    assert failures == len(scenarios)
    texts.append(caplog.text)
    for text in texts:
        assert TOKEN not in text


def test_mirror_credentials_are_masked_in_the_configuration_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIHUB_URL", f"https://user:{TOKEN}@mirror.example.org/zoo")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    shown = [str(s) for s in describe()] + [repr(resolve())]
    assert "mirror.example.org" in " ".join(shown)
    assert all(TOKEN not in text for text in shown)


def test_not_found_everywhere_names_urls_without_secrets(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(ModelNotFoundError) as info:
        fetch(_hf_model("nowhere.gguf"))  # type: ignore[arg-type]
    assert "/hf/org/llm/resolve/main/nowhere.gguf" in str(info.value)
    assert TOKEN not in str(info.value)
