"""End to end: a generated-style package, a real loopback zoo, the runtime, then the loader.

``omnihub._entry.load_model`` reads the package's catalogue, ``omnihub.hub.fetch`` downloads
the file from a real HTTP server on 127.0.0.1 into a temporary OMNIHUB_HOME, and
``omnihub.loaders.load`` returns each framework's typed object -- the type ``result_type``
promised for the generated function's annotation.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry, catalog_to_json
from omnihub.loaders import result_type
from pytest_httpserver import HTTPServer

from .helpers import make_entry, shared_dir
from .test_formats import _onnx_model, write_gguf

PACKAGE = "loaders_end_to_end"


def _files(tmp_path: Path) -> list[tuple[str, Format, Framework, ModelType, Path]]:
    import onnx
    from safetensors.numpy import save_file

    made = tmp_path / "made"
    made.mkdir()
    onnx.save_model(_onnx_model(np.ones((2, 2), np.float32)), os.fspath(made / "m.onnx"))
    save_file({"w": np.arange(3, dtype=np.float32)}, os.fspath(made / "w.safetensors"))
    write_gguf(made / "t.gguf")
    samediff = shared_dir("samediff") / "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb"
    dl4j = shared_dir("dl4j")
    return [
        ("mlp_moon.fb", Format.SAMEDIFF, Framework.SAMEDIFF, ModelType.COMP_GRAPH, samediff),
        (
            "iris.zip",
            Format.DL4J,
            Framework.DL4J,
            ModelType.SEQUENTIAL,
            dl4j / "trained_iris_model.zip",
        ),
        (
            "lstm.zip",
            Format.DL4J,
            Framework.DL4J,
            ModelType.COMP_GRAPH,
            dl4j / "060_ModelSerializer_Regression_CG_LSTM_1.zip",
        ),
        ("m.onnx", Format.ONNX, Framework.ONNX, ModelType.COMP_GRAPH, made / "m.onnx"),
        (
            "w.safetensors",
            Format.SAFETENSORS,
            Framework.ONNX,
            ModelType.COMP_GRAPH,
            made / "w.safetensors",
        ),
        ("t.gguf", Format.GGUF, Framework.ONNX, ModelType.COMP_GRAPH, made / "t.gguf"),
        ("raw.bin", Format.RAW, Framework.DL4J, ModelType.COMP_GRAPH, made / "t.gguf"),
    ]


@pytest.fixture
def zoo(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[ModelEntry]]:
    """Serve the model files, install a catalogue package for them, point the runtime at both."""
    before = set(sys.modules)
    entries = []
    for file, fmt, framework, model_type, source in _files(tmp_path):
        data = source.read_bytes()
        httpserver.expect_request(f"/{framework}/{file}").respond_with_data(data)
        name = file.replace(".", "_")
        entries.append(
            make_entry(
                fmt,
                framework,
                model_type,
                name=name,
                python_name=name,
                package=PACKAGE,
                file=file,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
        )
    site = tmp_path / "site"
    package_dir = site / "omnihub_generated" / PACKAGE
    package_dir.mkdir(parents=True)
    (package_dir / "__init__.py").write_text('"""Test catalogue package."""\n', encoding="utf-8")
    catalog = Catalog(namespace="TestModels", package=PACKAGE, models=tuple(entries))
    (package_dir / "_catalog.json").write_text(catalog_to_json(catalog), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNIHUB_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("OMNIHUB_DISABLE_PROGRESS", "1")
    monkeypatch.delenv("OMNIHUB_OFFLINE", raising=False)
    import omnihub._entry as entry_module

    monkeypatch.setattr(entry_module, "_catalogs", {})
    yield entries
    # leave no trace of the temporary generated package for later tests
    for name in set(sys.modules) - before:
        if name.startswith("omnihub_generated"):
            del sys.modules[name]


def test_every_format_loads_through_the_runtime(zoo: list[ModelEntry]) -> None:
    from omnihub._entry import load_model

    for entry in zoo:
        model: Any = load_model(PACKAGE, entry.python_name)
        module, qualname = result_type(entry)
        expected = getattr(importlib.import_module(module), qualname)
        assert isinstance(model, expected), (entry.name, type(model), expected)
        assert sys.modules[module] is importlib.import_module(module)
    # and the typed objects carry the models' content
    graph = load_model(PACKAGE, "mlp_moon_fb")
    assert set(graph.weights) == {"w0", "b0", "w1", "b1"}
    assert load_model(PACKAGE, "iris_zip").param_count == 39
    assert load_model(PACKAGE, "lstm_zip").param_count == 477
