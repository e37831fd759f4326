"""Repositories (DL4J ADR 0076): mirrors, fallback, Hugging Face, per-entry repositories, plugins,
and credentials that never leak."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import omnihub.repositories as repos
import pytest
from omnihub._enums import Format, Framework
from omnihub.catalog import ModelEntry
from omnihub.config import Config
from omnihub.errors import ConfigurationError, DownloadError, IntegrityError, ModelNotFoundError
from omnihub.hub import fetch
from omnihub.repositories import (
    Source,
    ZooRepository,
    register_repository,
    registered_repositories,
    unregister_repository,
)

from tests.runtime.fault_server import Fault, FaultServer
from tests.runtime.helpers import Env, entry, payload

TOKEN = "hf_TOPSECRETtoken123"


@pytest.fixture
def second() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def extra_repo() -> Iterator[list[str]]:
    """Names registered during a test, unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_repository(name)


def test_mirrors_are_tried_in_order(
    env: Env, second: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(1000)
    second.add("/mirror/samediff/model.fb", data)
    monkeypatch.setenv("OMNIHUB_URL", f"{env.base} {second.url}/mirror")
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(env.server.requests_for("/zoo/samediff/model.fb")) == 1  # 404 there first
    assert len(second.requests_for("/mirror/samediff/model.fb")) == 1


def test_a_mirror_announcing_more_bytes_than_the_disk_has_is_skipped(
    env: Env, second: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 GB Content-Length for a spec without a size is that mirror's failure (issue 15
    item 7): no fake "No space left on device", no retry, and the next mirror is tried."""
    import http.server
    import threading

    asked: list[str] = []

    class Absurd(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(500 * 10**9))
            self.end_headers()
            self.wfile.write(b"x" * 1000)

        def log_message(self, *args: object) -> None:
            pass

    absurd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Absurd)
    threading.Thread(target=absurd.serve_forever, daemon=True).start()
    data = payload(1000)
    second.add("/mirror/samediff/model.fb", data)
    first = f"http://127.0.0.1:{absurd.server_address[1]}/zoo"
    monkeypatch.setenv("OMNIHUB_URL", f"{first} {second.url}/mirror")
    try:
        path = fetch(entry(data=data, declare=False))
    finally:
        absurd.shutdown()
        absurd.server_close()
    assert path.read_bytes() == data
    assert asked == ["/zoo/samediff/model.fb"]  # refused at once: no retry, no partial write
    assert len(second.requests_for("/mirror/samediff/model.fb")) == 1
    assert not path.with_name("model.fb.incomplete").exists()


def test_unavailable_mirror_falls_back(
    env: Env, second: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHUB_RETRIES", "1")
    data = payload(1000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.status(503), Fault.status(503))
    second.add("/mirror/samediff/model.fb", data)
    monkeypatch.setenv("OMNIHUB_URL", f"{env.base},{second.url}/mirror")
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(second.requests_for("/mirror/samediff/model.fb")) == 1


def test_integrity_failure_never_falls_back(
    env: Env, second: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(1000)
    where = env.publish("model.fb", data)
    env.server.fault(where, Fault.flip(0))
    second.add("/mirror/samediff/model.fb", data)
    monkeypatch.setenv("OMNIHUB_URL", f"{env.base} {second.url}/mirror")
    with pytest.raises(IntegrityError):
        fetch(entry(data=data))
    assert second.log == []


def test_not_found_everywhere_lists_every_url(
    env: Env, second: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHUB_URL", f"{env.base} {second.url}/mirror")
    with pytest.raises(ModelNotFoundError) as info:
        fetch(entry("nowhere.fb"))
    message = str(info.value)
    assert f"{env.base}/samediff/nowhere.fb" in message
    assert f"{second.url}/mirror/samediff/nowhere.fb" in message


def test_file_mirror(tmp_path: Path, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(2_500_000)
    mirror = tmp_path / "mirror dir"
    (mirror / "samediff").mkdir(parents=True)
    (mirror / "samediff" / "model.fb").write_bytes(data)
    monkeypatch.setenv("OMNIHUB_URL", f"{mirror.as_uri()} {env.base}")
    assert fetch(entry(data=data)).read_bytes() == data
    assert env.server.log == []


def test_file_mirror_with_bad_content_is_an_integrity_error(
    tmp_path: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "samediff").mkdir()
    (tmp_path / "samediff" / "model.fb").write_bytes(b"wrong!")
    monkeypatch.setenv("OMNIHUB_URL", tmp_path.as_uri())
    with pytest.raises(IntegrityError, match="size 6 bytes, expected 5"):
        fetch(entry(data=b"right"))
    assert not (env.home / "samediff" / "model.fb").exists()


def test_catalogue_url_may_not_be_a_file_url(env: Env, tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"x")
    model = entry(data=b"x", repository="url", url=(tmp_path / "m").as_uri())
    with pytest.raises(ConfigurationError, match="file:// URLs are allowed only"):
        fetch(model)


def test_remote_plain_http_mirror_is_refused(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHUB_URL", "http://mirror.example.invalid/zoo")
    with pytest.raises(ConfigurationError, match="OMNIHUB_ALLOW_HTTP"):
        fetch(entry(data=b"x"))


def test_entry_url_repository_for_onnx_zoo(env: Env) -> None:
    data = payload(1000)
    url = env.server.add("/onnx/validated/vision/model.onnx", data)
    model = entry(
        "model.onnx",
        data=data,
        framework=Framework.ONNX,
        repository="onnx-model-zoo",
        url=url,
        format=Format.ONNX,
    )
    path = fetch(model)
    assert path == env.home / "onnx" / "model.onnx"
    assert path.read_bytes() == data
    assert env.server.requests_for("/zoo/onnx/model.onnx") == []  # only the named repository


def test_named_repository_is_the_only_one_used(env: Env, extra_repo: list[str]) -> None:
    env.publish("model.fb", b"zoo copy")
    register_repository(ZooRepository("backup", (env.server.url + "/backup",)), fallback=False)
    extra_repo.append("backup")
    with pytest.raises(ModelNotFoundError, match=r"/backup/samediff/model\.fb"):
        fetch(entry(data=b"zoo copy", repository="backup"))
    assert env.server.requests_for("/zoo/samediff/model.fb") == []


def test_unknown_repository_is_a_configuration_error(env: Env) -> None:
    with pytest.raises(ConfigurationError, match=r"names repository 'nope'.*known: omnihub"):
        fetch(entry(data=b"x", repository="nope"))


def test_fallback_between_two_repositories(
    env: Env, second: FaultServer, extra_repo: list[str]
) -> None:
    data = payload(1000)
    second.add("/other/samediff/model.fb", data)
    register_repository(ZooRepository("other", (second.url + "/other",)), priority=50)
    extra_repo.append("other")
    names = [name for name, *_ in registered_repositories()]
    assert names.index("omnihub") < names.index("huggingface") < names.index("other")
    assert fetch(entry(data=data)).read_bytes() == data
    assert len(env.server.requests_for("/zoo/samediff/model.fb")) == 1  # tried first, 404
    assert len(second.requests_for("/other/samediff/model.fb")) == 1


def test_duplicate_registration_is_refused(extra_repo: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="already registered"):
        register_repository(ZooRepository())


@attrs.frozen
class _Plugin:
    name: str = "plugin-repo"

    def sources(self, entry: ModelEntry, config: Config) -> Sequence[Source]:
        base = config.urls[0].rsplit("/", 1)[0]
        return [Source(f"{base}/plugin/{entry.file}", self.name)]


PLUGIN = _Plugin()


def test_entry_point_repository(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_repo: list[str]
) -> None:
    dist = tmp_path / "site" / "omnihub_test_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: omnihub-test-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[omnihub.repositories]\nplugin-repo = test_runtime_repositories:PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(sys.modules, "test_runtime_repositories", sys.modules[__name__])
    monkeypatch.setitem(repos._state, "entry_points_loaded", False)
    extra_repo.append("plugin-repo")
    data = payload(100)
    env.server.add("/plugin/model.fb", data)
    assert fetch(entry(data=data, repository="plugin-repo")).read_bytes() == data


def _hf_setup(env: Env, files: dict[str, bytes], repo: str = "org/llm") -> None:
    listing = {"siblings": [{"rfilename": name} for name in files]}
    env.server.add(
        f"/hf/api/models/{repo}/revision/main",
        json.dumps(listing).encode(),
        content_type="application/json",
    )
    for name, data in files.items():
        env.server.add(f"/hf/{repo}/resolve/main/{name}", data)


def _hf_entry(pattern: str | None, file: str, data: bytes | None = None) -> ModelEntry:
    return entry(
        file,
        data=data,
        repository="huggingface",
        hugging_face_id="org/llm",
        file_pattern=pattern,
        format=Format.GGUF,
    )


def test_hugging_face_file_pattern_selection(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    q4, q8 = payload(3000, seed=4), payload(3000, seed=8)
    _hf_setup(env, {"llm-Q4_K_M.gguf": q4, "llm-Q8_0.gguf": q8, "README.md": b"hi"})
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = fetch(_hf_entry("*Q4_K_M.gguf", "llm-q4.gguf", q4))
    assert path == env.home / "samediff" / "llm-q4.gguf"
    assert path.read_bytes() == q4
    (download,) = env.server.requests_for("/hf/org/llm/resolve/main/llm-Q4_K_M.gguf")
    assert download.headers["authorization"] == f"Bearer {TOKEN}"
    (listing,) = env.server.requests_for("/hf/api/models/org/llm/revision/main")
    assert listing.headers["authorization"] == f"Bearer {TOKEN}"


def test_hugging_face_ambiguous_pattern(env: Env) -> None:
    _hf_setup(env, {"a.gguf": b"a", "b.gguf": b"b"})
    with pytest.raises(ConfigurationError, match=r"matches 2 files.*a\.gguf, b\.gguf"):
        fetch(_hf_entry("*.gguf", "x.gguf"))


def test_hugging_face_no_match(env: Env) -> None:
    _hf_setup(env, {"a.safetensors": b"a"})
    with pytest.raises(ModelNotFoundError, match=r"no file matching '\*\.gguf'"):
        fetch(_hf_entry("*.gguf", "x.gguf"))


def test_hugging_face_token_not_forwarded_across_hosts_nor_logged(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = payload(2000)
    cdn = env.server.url.replace("127.0.0.1", "localhost") + "/cdn/blob"
    env.server.add("/cdn/blob", data)
    env.server.add_redirect("/hf/org/llm/resolve/main/model.gguf", cdn)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with caplog.at_level(logging.DEBUG):
        assert fetch(_hf_entry(None, "model.gguf", data)).read_bytes() == data
    (first,) = env.server.requests_for("/hf/org/llm/resolve/main/model.gguf")
    (second,) = env.server.requests_for("/cdn/blob")
    assert first.headers.get("authorization") == f"Bearer {TOKEN}"
    assert "authorization" not in second.headers
    assert TOKEN not in caplog.text


def test_token_never_in_error_messages(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    env.server.fault("/hf/org/llm/resolve/main/model.gguf", Fault.status(401))
    env.server.add("/hf/org/llm/resolve/main/model.gguf", b"x")
    with pytest.raises(DownloadError) as info:
        fetch(_hf_entry(None, "model.gguf", b"x"))
    assert "HTTP 401" in str(info.value)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(repos.HuggingFaceRepository(token=TOKEN))
