"""End to end: the generated functions download once, verify, cache, then stay off the network."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from omnihub.catalog import catalog_from_json
from omnihub.repositories import repositories_for
from omnihub.urls import cache_path

from tests.runtime.helpers import REPO, Env, run_python, sha256

GENERATED = REPO / "generated" / "omnihub_generated"
SHARED = REPO / ".." / "shared" / "data" / "samediff"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("omnihub_generated.samediff") is None,
    reason="generated/omnihub_generated.samediff has not been compiled",
)


def _real_samediff_file() -> bytes:
    files = sorted(SHARED.glob("*.fb"))
    if not files:
        pytest.skip(f"no real SameDiff .fb files under {SHARED}")
    return files[0].read_bytes()


def test_every_generated_entry_has_a_safe_cache_path_and_a_repository() -> None:
    catalogs = sorted(GENERATED.glob("*/_catalog.json"))
    assert catalogs
    for path in catalogs:
        for model in catalog_from_json(path.read_bytes(), source=path).models:
            for home in (PurePosixPath("/h"), PureWindowsPath("C:/h")):
                relative = cache_path(home, str(model.framework), model.file).relative_to(home)
                assert relative.parts[0] == str(model.framework)
            assert repositories_for(model), model.source


def test_resnet18_downloads_once_then_hits_the_cache(env: Env) -> None:
    data = _real_samediff_file()
    where = env.publish("resnet18.fb", data)
    code = """
import json, sys
from omnihub_generated.samediff import resnet18
resnet18()
print(json.dumps({"requests": "requests" in sys.modules}))
"""
    first = run_python(code)
    assert first["requests"] is True  # it did download
    cached = env.home / "samediff" / "resnet18.fb"
    assert cached.read_bytes() == data
    record = json.loads((cached.parent / "resnet18.fb.omnihub.json").read_text())
    assert record["sha256"] == sha256(data)
    assert record["origin"] == "first-use"  # the zoo snapshot declares no sha256 for it
    assert len(env.server.requests_for(where)) == 1

    offline_check = """
import json, socket, sys
class _NoSocket(socket.socket):
    def __init__(self, *a, **k):
        raise AssertionError("a socket was opened")
socket.socket = _NoSocket
from omnihub_generated.samediff import resnet18
model = resnet18()
path = getattr(model, "path", None)
print(json.dumps({"requests": "requests" in sys.modules, "tqdm": "tqdm" in sys.modules,
                  "type": type(model).__name__}))
"""
    second = run_python(offline_check)
    assert second["requests"] is False
    assert second["tqdm"] is False
    assert len(env.server.requests_for(where)) == 1
    assert Path(cached).exists()
