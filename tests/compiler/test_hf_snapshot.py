"""Hugging Face models as DL4J has them: every file matching a glob (issue 16 item 8).

Against a fake Hub on loopback that implements the listing
(``/api/models/<id>/revision/<rev>?blobs=true``) and ``resolve`` endpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import pytest
from omnihub import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.errors import IntegrityError, ModelNotFoundError, OfflineError
from omnihub.hf_snapshot import Snapshot, dl4j_glob, fetch_snapshot, is_snapshot
from omnihub_compiler.compile import build_catalogs, compile_spec

REPO = "org/llm"
FILES = {
    "model-00001-of-00002.safetensors": b"shard one " * 300,
    "model-00002-of-00002.safetensors": b"shard two " * 200,
    "config.json": b'{"hidden_size": 8}',
    "sub/tokenizer.json": b'{"vocab": {}}',
    "README.md": b"# llm",
}
LFS = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@attrs.define
class FakeHub:
    url: str
    files: dict[str, bytes]
    served: dict[str, bytes]  # what resolve returns (may differ from the listing)
    requests: list[str]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    state = FakeHub("", dict(FILES), dict(FILES), [])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            listing = f"/api/models/{REPO}/revision/main"
            if self.path.split("?")[0] == listing:
                siblings = []
                for name, data in sorted(state.files.items()):
                    item: dict[str, object] = {"rfilename": name, "size": len(data)}
                    item["blobId"] = _blob_id(data)
                    if name in LFS:
                        item["lfs"] = {
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "size": len(data),
                        }
                    siblings.append(item)
                body = json.dumps({"id": REPO, "siblings": siblings}).encode()
            else:
                prefix = f"/{REPO}/resolve/main/"
                name = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
                if name not in state.served:
                    self.send_error(404)
                    return
                body = state.served[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("OMNIHUB_OFFLINE", raising=False)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _entry(pattern: str | None, fmt: Format = Format.SAFETENSORS) -> ModelEntry:
    return ModelEntry(
        name="llm",
        python_name="llm",
        namespace="M",
        package="m",
        framework=Framework.SAMEDIFF,
        model_type=ModelType.SAMEDIFF_PIPELINE,
        format=fmt,
        documentation="d",
        file=REPO if pattern is None else f"{REPO}/{pattern}",
        repository="huggingface",
        hugging_face_id=REPO,
        file_pattern=pattern,
    )


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.safetensors", "model-00001-of-00002.safetensors", True),
        ("*.json", "sub/tokenizer.json", True),  # DL4J: '*' crosses '/'
        ("config.js?n", "config.json", True),
        ("[a].json", "a.json", False),  # DL4J: '[' is literal
        ("[a].json", "[a].json", True),
        ("*.gguf", "model.gguf.bak", False),  # the whole path must match
        (None, "anything/at/all", True),
    ],
)
def test_dl4j_glob(pattern: str | None, path: str, matches: bool) -> None:
    assert bool(dl4j_glob(pattern).fullmatch(path)) is matches


def test_which_entries_are_snapshots() -> None:
    assert is_snapshot(_entry("*.safetensors"))
    assert is_snapshot(_entry(None))
    assert not is_snapshot(_entry("model.safetensors"))


def home() -> Path:
    return Path(os.environ["OMNIHUB_HOME"])


def test_every_matching_file_is_downloaded_verified_into_dl4j_layout(hub: FakeHub) -> None:
    snapshot = fetch_snapshot(_entry("*.safetensors"))
    directory = home() / "huggingface" / "org" / "llm"
    assert snapshot.directory == directory
    assert snapshot.path == directory  # several files: the directory
    assert [p.name for p in snapshot.files] == sorted(n for n in FILES if n in LFS)
    for path in snapshot.files:
        assert path.read_bytes() == FILES[path.name]
    assert not list(directory.glob("*.incomplete"))
    assert [r.split("?")[0] for r in hub.requests] == [
        f"/api/models/{REPO}/revision/main",
        f"/{REPO}/resolve/main/model-00001-of-00002.safetensors",
        f"/{REPO}/resolve/main/model-00002-of-00002.safetensors",
    ]
    assert hub.requests[0].endswith("?blobs=true")


def test_all_files_with_none_and_one_file_returns_the_file(hub: FakeHub) -> None:
    everything = fetch_snapshot(_entry(None))
    assert sorted(
        p.relative_to(everything.directory).as_posix() for p in everything.files
    ) == sorted(FILES)
    one = fetch_snapshot(_entry("config.js?n"))
    assert one.path == one.directory / "config.json"


def test_a_second_call_is_a_cache_hit_without_network_and_works_offline(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fetch_snapshot(_entry("*.safetensors"))
    count = len(hub.requests)
    assert fetch_snapshot(_entry("*.safetensors")) == first
    monkeypatch.setenv("OMNIHUB_OFFLINE", "1")
    assert fetch_snapshot(_entry("*.safetensors")) == first
    assert len(hub.requests) == count
    first.files[0].write_bytes(b"changed")  # no longer as recorded: fetched again
    with pytest.raises(OfflineError, match="is not in the cache"):
        fetch_snapshot(_entry("*.safetensors"))
    monkeypatch.delenv("OMNIHUB_OFFLINE")
    again = fetch_snapshot(_entry("*.safetensors"))
    assert again.files[0].read_bytes() == FILES[again.files[0].name]


def test_force_download_downloads_again(hub: FakeHub) -> None:
    fetch_snapshot(_entry("config.json*"))
    count = len(hub.requests)
    fetch_snapshot(_entry("config.json*"), force_download=True)
    assert len(hub.requests) == count + 2  # the listing and the file


def test_a_glob_matching_nothing_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        fetch_snapshot(_entry("*.gguf", Format.GGUF))
    assert str(info.value) == (
        "model 'llm': Hugging Face repository org/llm@main has no file matching '*.gguf'"
        " (files: README.md, config.json, model-00001-of-00002.safetensors,"
        " model-00002-of-00002.safetensors, sub/tokenizer.json)"
    )


@pytest.mark.parametrize("name", ["model-00002-of-00002.safetensors", "config.json"])
def test_bytes_that_do_not_match_the_listing_are_rejected(hub: FakeHub, name: str) -> None:
    hub.served[name] = bytes(reversed(FILES[name]))  # same size, other content
    pattern = "*" if name == "config.json" else "*.safetensors"
    with pytest.raises(IntegrityError):
        fetch_snapshot(_entry(pattern))
    target = home() / "huggingface" / "org" / "llm" / name
    assert not target.exists()


SPEC = textwrap.dedent(
    """
    from omnihub_compiler.dsl import NamespaceBuilder, framework_namespace

    @framework_namespace("LLMModels", package="llm")
    def llm(ns: NamespaceBuilder) -> None:
        ns.safetensors_model("llm-shards", "Every shard.", "org/llm")
        ns.safetensors_model("llm-all", "Every file.", "org/llm", None)
    """
)


def test_generated_functions_return_the_snapshot(hub: FakeHub, tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "llm.py").write_text(SPEC)
    (catalog,) = build_catalogs(spec_dir)
    assert {m.python_name: m.file for m in catalog.models} == {
        "llm_all": "org/llm",
        "llm_shards": "org/llm/*.safetensors",
    }
    out = tmp_path / "out"
    compile_spec(spec_dir, out)
    stub = (out / "omnihub_generated/llm/__init__.pyi").read_text()
    assert "def llm_shards(*, force_download: bool = False) -> Snapshot: ..." in stub
    code = (
        "from omnihub_generated.llm import llm_all, llm_shards\n"
        "s = llm_shards()\n"
        "print(type(s).__name__, s.path.name, len(s.files), len(llm_all().files))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(out)},
    )
    assert result.stdout.split() == ["Snapshot", "llm", "2", str(len(FILES))]
    assert isinstance(fetch_snapshot(catalog.models[1]), Snapshot)


def make_pair(path: Path, entry: ModelEntry) -> tuple[Path, str]:
    """A factory (``module:callable``) for the test below."""
    return path, entry.name


def test_a_factory_gets_the_snapshot_path(hub: FakeHub) -> None:
    import attrs
    from omnihub._entry import _entries, load_model

    factory = f"{__name__}:make_pair"
    entry = attrs.evolve(_entry("config.js?n"), factory=factory)
    _entries["m", "llm"] = entry  # what the catalogue of package "m" would give
    try:
        loaded = load_model("m", "llm")
    finally:
        del _entries["m", "llm"]
    assert loaded == (home() / "huggingface" / "org" / "llm" / "config.json", "llm")
