"""Models kept as JSON data in spec/, errors located at the entry (issue 16 item 10)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub_compiler.compile import build_catalogs
from omnihub_compiler.errors import CompileError
from omnihub_compiler.manifest import ManifestError, read_manifest

REPO = Path(__file__).resolve().parents[2]

SPEC = textwrap.dedent(
    """
    from omnihub_compiler.dsl import Framework, NamespaceBuilder, framework_namespace

    @framework_namespace("Zoo", package="zoo")
    def zoo(ns: NamespaceBuilder) -> None:
        for entry in ns.manifest("data/zoo.json", label=("model", "opset")):
            with ns.at(entry):
                ns.model(
                    entry.text("model"),
                    "A model.",
                    "https://h.example/" + entry.text("file"),
                    framework=Framework.ONNX,
                    repository="url",
                    sha256=entry["sha256"],
                    size=entry.integer("size"),
                    python_name=f"{entry.text('model').lower()}_{entry.integer('opset')}",
                )
    """
)


def _row(name: str, opset: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "model": name,
        "opset": opset,
        "file": f"{name.lower()}-{opset}.onnx",
        "sha256": "a" * 64,
        "size": 10,
    }
    row.update(changes)
    return row


def _spec(tmp_path: Path, rows: object | str) -> Path:
    spec_dir = tmp_path / "spec"
    (spec_dir / "data").mkdir(parents=True)
    (spec_dir / "zoo.py").write_text(SPEC)
    text = rows if isinstance(rows, str) else json.dumps(rows, indent=1)
    (spec_dir / "data" / "zoo.json").write_text(text)
    return spec_dir


def _errors(spec_dir: Path) -> list[str]:
    with pytest.raises(CompileError) as info:
        build_catalogs(spec_dir)
    return info.value.lines


def test_models_from_a_manifest_are_located_at_their_entry(tmp_path: Path) -> None:
    rows = [_row("AlexNet", 7), _row("ResNet50", 8)]
    (catalog,) = build_catalogs(_spec(tmp_path, rows))
    assert [(m.python_name, m.source) for m in catalog.models] == [
        ("alexnet_7", "spec/data/zoo.json:2"),
        ("resnet50_8", "spec/data/zoo.json:9"),
    ]


def test_a_validation_error_names_the_entry(tmp_path: Path) -> None:
    rows = [_row("AlexNet", 7), _row("ResNet50", 7, sha256="nope")]
    assert _errors(_spec(tmp_path, rows)) == [
        "spec/data/zoo.json:9: entry 1 (model 'ResNet50', opset 7):"
        " sha256 must be 64 hexadecimal digits, not 'nope'"
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"model": "X", "opset": 7}, "missing field 'file'"),
        (_row("X", 7, size="10"), "field 'size' must be an integer, not str"),
        (_row("X", 7, size=True), "field 'size' must be an integer, not bool"),
        (_row("X", 7, model=3), "field 'model' must be a string, not int"),
    ],
)
def test_a_bad_field_is_one_line_at_its_entry(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    (line,) = _errors(_spec(tmp_path, [_row("A", 1), row]))
    label = f"model {row['model']!r}" if isinstance(row["model"], str) else f"model {row['model']}"
    assert line == f"spec/data/zoo.json:9: entry 1 ({label}, opset 7): {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[\n {"model": "A"},\n {"model": }\n]',
            "spec/data/zoo.json:3: invalid JSON: Expecting value",
        ),
        ('{"model": "A"}', "spec/data/zoo.json:1: a manifest must be a JSON list"),
        ("[\n 1\n]", "spec/data/zoo.json:2: entry 0 must be a JSON object, not int"),
        ("[\n {}\n {}\n]", "spec/data/zoo.json:3: invalid JSON: expected ',' or ']'"),
        ("[]\n]", "spec/data/zoo.json:2: invalid JSON: extra data"),
    ],
)
def test_a_malformed_manifest_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    assert _errors(_spec(tmp_path, text)) == [message]


def test_the_real_onnx_manifest_locates_every_model_at_its_entry() -> None:
    (onnx,) = [c for c in build_catalogs(REPO / "spec") if c.package == "onnx"]
    lines = (REPO / "spec" / "onnx_manifest.json").read_text().splitlines()
    assert len(onnx.models) == 184
    for model in onnx.models:
        file, line = str(model.source).rsplit(":", 1)
        assert file == "spec/onnx_manifest.json"
        assert lines[int(line) - 1].strip() == "{"
        following = lines[int(line)]
        assert following.strip() == '"model": ' + json.dumps(model.name) + ",", following


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.dictionaries(st.text(max_size=4), _JSON, max_size=3), max_size=5),
    indent=st.sampled_from([None, 1, 4]),
)
def test_read_manifest_returns_every_object_at_its_line(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, object]], indent: int | None
) -> None:
    path = tmp_path_factory.mktemp("m") / "m.json"
    text = json.dumps(rows, indent=indent)
    path.write_text(text)
    entries = read_manifest(path, "m.json")
    assert [dict(e.data) for e in entries] == rows
    assert [e.index for e in entries] == list(range(len(rows)))
    lines = text.split("\n")
    if indent is None:
        assert all(e.line == 1 for e in entries)
    else:  # each object starts on its own line, with "{"
        assert all(lines[e.line - 1].strip().startswith("{") for e in entries)
        assert len({e.line for e in entries}) == len(entries)


def test_read_manifest_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path / "missing.json", "spec/missing.json")
    assert info.value.location == "spec/missing.json:1"
    assert info.value.message.startswith("cannot read manifest: ")
