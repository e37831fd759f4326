"""The loader registry: result types, factories, API registration and real entry points."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.errors import ConfigurationError
from omnihub.loaders import LoaderSpec, find_loader, load, register, registered_loaders, result_type
from omnihub.model_file import ModelFile

from .helpers import make_entry

EXPECTED_TYPES = [
    (Format.SAMEDIFF, Framework.SAMEDIFF, ModelType.SAMEDIFF_PIPELINE, "samediff.SameDiffGraph"),
    (Format.DL4J, Framework.DL4J, ModelType.COMP_GRAPH, "dl4j.ComputationGraph"),
    (Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL, "dl4j.MultiLayerNetwork"),
    (Format.DL4J, Framework.DL4J, ModelType.SAMEDIFF_PIPELINE, "dl4j.Dl4jNetwork"),
    (Format.ONNX, Framework.ONNX, ModelType.SAMEDIFF_PIPELINE, "onnx:ModelProto"),
    (
        Format.SAFETENSORS,
        Framework.ONNX,
        ModelType.SAMEDIFF_PIPELINE,
        "safetensors_model.SafeTensorsWeights",
    ),
    (Format.GGUF, Framework.ONNX, ModelType.SAMEDIFF_PIPELINE, "gguf_model.GGUFModel"),
    (Format.RAW, Framework.DL4J, ModelType.COMP_GRAPH, "model_file:ModelFile"),
]


def _expected(short: str) -> tuple[str, str]:
    if ":" in short:
        module, name = short.split(":")
        return ("omnihub.model_file" if module == "model_file" else module, name)
    module, name = short.split(".")
    return (f"omnihub.loaders.{module}", name)


@pytest.mark.parametrize(("fmt", "framework", "model_type", "short"), EXPECTED_TYPES)
def test_result_type_names_a_real_class(
    fmt: Format, framework: Framework, model_type: ModelType, short: str
) -> None:
    module, qualname = result_type(make_entry(fmt, framework, model_type))
    assert (module, qualname) == _expected(short)
    assert isinstance(getattr(importlib.import_module(module), qualname), type)


def test_result_type_and_dispatch_import_nothing_heavy() -> None:
    code = textwrap.dedent(
        """
        import sys
        from omnihub._enums import Format, Framework, ModelType
        from omnihub.catalog import ModelEntry
        from omnihub.loaders import find_loader, result_type
        for fmt in Format:
            e = ModelEntry(name="m", python_name="m", namespace="N", package="p",
                           framework=Framework.DL4J, model_type=ModelType.COMP_GRAPH,
                           format=fmt, documentation="", file="m")
            result_type(e)
            find_loader(e)
        heavy = {"numpy", "onnx", "flatbuffers", "safetensors", "gguf", "google.protobuf"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_raw_format_returns_the_verified_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01")
    entry = make_entry(Format.RAW)
    result = load(entry, path)
    assert isinstance(result, ModelFile)
    assert result.path == path
    assert result.entry is entry
    assert result.read_bytes() == b"\x00\x01"


def _write_module(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


def test_factory_is_called_with_path_and_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(
        tmp_path,
        "omnihub_test_factory",
        """
        class Rebuilt:
            def __init__(self, path, entry):
                self.path, self.entry = path, entry

        def build(path, entry):
            return Rebuilt(path, entry)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "omnihub_test_factory", raising=False)
    entry = make_entry(
        Format.SAFETENSORS,
        factory="omnihub_test_factory:build",
        metadata={"result_type": "omnihub_test_factory:Rebuilt"},
    )
    model = load(entry, tmp_path / "weights.safetensors")
    assert type(model).__name__ == "Rebuilt"
    assert model.path == tmp_path / "weights.safetensors"  # type: ignore[attr-defined]
    assert model.entry is entry  # type: ignore[attr-defined]
    assert result_type(entry) == ("omnihub_test_factory", "Rebuilt")
    assert result_type(attrs.evolve(entry, metadata={})) == ("builtins", "object")


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_colon", "not of the form 'module:callable'"),
        ("omnihub_no_such_module:f", "cannot import 'omnihub_no_such_module'"),
        ("omnihub.errors:no_such_name", "has no 'no_such_name'"),
        ("omnihub._enums:DEFAULT_OMNIHUB_URL", "is not callable"),
    ],
)
def test_bad_factory_is_a_configuration_error(factory: str, message: str, tmp_path: Path) -> None:
    entry = make_entry(Format.RAW, factory=factory)
    with pytest.raises(ConfigurationError, match=message):
        load(entry, tmp_path / "x")


def test_bad_declared_result_type() -> None:
    entry = make_entry(Format.RAW, factory="m:f", metadata={"result_type": "NoColon"})
    with pytest.raises(ConfigurationError, match="not 'module:qualname'"):
        result_type(entry)


def test_register_overrides_by_specificity_then_order(tmp_path: Path) -> None:
    calls: list[str] = []

    def generic(entry: ModelEntry, path: Path) -> object:
        calls.append("generic")
        return "generic"

    def specific(entry: ModelEntry, path: Path) -> object:
        calls.append("specific")
        return "specific"

    register(specific, format=Format.ONNX, framework="onnx", result_type=("pkg", "Specific"))
    register(generic, format=Format.ONNX, result_type=("pkg", "Generic"))
    onnx_entry = make_entry(Format.ONNX, Framework.ONNX)
    other_entry = make_entry(Format.ONNX, Framework.SAMEDIFF)
    assert load(onnx_entry, tmp_path / "m.onnx") == "specific"  # two keys beat one
    assert load(other_entry, tmp_path / "m.onnx") == "generic"  # later beats built-in
    assert result_type(onnx_entry) == ("pkg", "Specific")
    assert result_type(other_entry) == ("pkg", "Generic")
    assert calls == ["specific", "generic"]


def test_register_by_string_reference(tmp_path: Path) -> None:
    spec = register("omnihub.loaders:load_raw", format=[Format.GGUF], result_type=_raw())
    assert spec.name == "omnihub.loaders:load_raw"
    path = tmp_path / "m.gguf"
    assert isinstance(load(make_entry(Format.GGUF), path), ModelFile)
    assert find_loader(make_entry(Format.GGUF)) is spec


def _raw() -> tuple[str, str]:
    return ("omnihub.model_file", "ModelFile")


def _make_distribution(root: Path, entry_points: str, module_source: str) -> None:
    """A minimal installed distribution: a module and a .dist-info with entry points."""
    _write_module(root, "omnihub_test_plugin", module_source)
    dist = root / "omnihub_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: omnihub-test-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points), encoding="utf-8")


def test_entry_point_plugin_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_distribution(
        tmp_path,
        """
        [omnihub.loaders]
        gguf-as-text = omnihub_test_plugin:SPEC
        """,
        """
        from omnihub.loaders import LoaderSpec

        def load_text(entry, path):
            return ("plugin", path.name)

        SPEC = LoaderSpec(
            name="gguf-as-text",
            loader=load_text,
            result_type=("builtins", "tuple"),
            formats="gguf",
            frameworks="onnx",
        )
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "omnihub_test_plugin", raising=False)
    entry = make_entry(Format.GGUF, Framework.ONNX)
    assert load(entry, tmp_path / "m.gguf") == ("plugin", "m.gguf")
    assert result_type(entry) == ("builtins", "tuple")
    assert "gguf-as-text" in [spec.name for spec in registered_loaders()]
    # the built-in still serves entries the plugin does not match
    assert result_type(make_entry(Format.GGUF, Framework.DL4J))[1] == "GGUFModel"


def test_api_registration_beats_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Precedence on equal specificity: built-in < entry point < register(), whatever the
    order of first use."""
    _make_distribution(
        tmp_path,
        """
        [omnihub.loaders]
        plugin = omnihub_test_plugin:SPEC
        """,
        """
        from omnihub.loaders import LoaderSpec

        SPEC = LoaderSpec(name="plugin", loader=lambda e, p: "plugin", formats="gguf")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "omnihub_test_plugin", raising=False)
    register(lambda e, p: "api", name="api", format="gguf")  # before entry points are read
    entry = make_entry(Format.GGUF)
    assert load(entry, tmp_path / "m.gguf") == "api"
    names = [spec.name for spec in registered_loaders()]
    assert names.index("gguf") < names.index("plugin") < names.index("api")


def test_broken_entry_point_warns_and_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_distribution(
        tmp_path,
        """
        [omnihub.loaders]
        broken = omnihub_test_plugin:MISSING
        wrong-type = omnihub_test_plugin:NOT_A_SPEC
        """,
        """
        NOT_A_SPEC = [42]
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "omnihub_test_plugin", raising=False)
    with pytest.warns(RuntimeWarning) as record:
        specs = registered_loaders()
    messages = " ".join(str(w.message) for w in record)
    assert "'broken'" in messages
    assert "'wrong-type'" in messages
    assert {s.name for s in specs} >= {"samediff", "dl4j", "onnx", "safetensors", "gguf", "raw"}


def test_loader_spec_key_normalisation() -> None:
    spec = LoaderSpec(name="x", loader="a:b", formats=[Format.ONNX, "gguf"], model_types=None)
    assert spec.formats == frozenset({"onnx", "gguf"})
    assert spec.specificity == 1
    with pytest.raises(TypeError):
        LoaderSpec(name="x", loader="a:b", formats=42)  # type: ignore[arg-type]


def test_a_registration_after_a_lookup_is_seen(tmp_path: Path) -> None:
    """The loader each (format, framework, model type) gets is remembered after the first
    lookup (a cached model's call does not scan every loader); registering forgets it."""
    entry = make_entry(Format.GGUF)
    built_in = find_loader(entry)
    assert built_in is not None
    assert built_in.name == "gguf"
    assert find_loader(entry) is built_in  # remembered

    def mine(entry: ModelEntry, path: Path) -> object:
        return "mine"

    spec = register(mine, format=Format.GGUF, result_type=("pkg", "Mine"))
    assert find_loader(entry) is spec
    assert load(entry, tmp_path / "m.gguf") == "mine"
