# ruff: noqa: E501 -- expected messages are kept on one line
"""Spec loading and validation: exact ``spec/<file>.py:<line>: <message>`` errors, all at once."""

from __future__ import annotations

import keyword
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub_compiler.compile import build_catalogs
from omnihub_compiler.errors import CompileError
from omnihub_compiler.naming import RESERVED, is_valid_python_name, python_name
from omnihub_compiler.validate import normalize_documentation

HEAD = (
    "from omnihub_compiler.dsl import (DEFAULT_OMNIHUB_URL as U, Framework, ModelType,"
    " NamespaceBuilder, framework_namespace)\n"
    '@framework_namespace("TestModels", package="test")\n'
    "def test(ns: NamespaceBuilder) -> None:\n"
)  # the first model call is on line 4


def spec(tmp_path: Path, body: str, name: str = "s.py") -> Path:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir(exist_ok=True)
    (spec_dir / name).write_text(HEAD + textwrap.indent(textwrap.dedent(body), "    "))
    return spec_dir


def errors(spec_dir: Path) -> list[str]:
    with pytest.raises(CompileError) as info:
        build_catalogs(spec_dir)
    return info.value.lines


OK = 'ns.samediff_model("m", "Doc.", f"{U}/samediff/m.fb")\n'


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'ns.samediff_model("m", "  \\n ", f"{U}/samediff/m.fb")',
            "documentation of model 'm' must not be blank",
        ),
        (
            'ns.samediff_model("m", "d", "samediff/m.fb")',
            "url 'samediff/m.fb' must be an absolute http(s) URL",
        ),
        (
            'ns.samediff_model("m", "d", "ftp://h/m.fb")',
            "url 'ftp://h/m.fb' must be an absolute http(s) URL",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/dir/")',
            "url 'https://h/dir/' must end with the model file name",
        ),
        (
            'ns.samediff_model("m", "d", f"{U}/samediff/a/../m.fb")',
            "url '" + "https://media.githubusercontent.com/media/KonduitAI/omnihub-zoo/main"
            "/samediff/a/../m.fb' gives an invalid model file 'a/../m.fb': segment '..' is not a plain name",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/a%5Cb.fb")',
            "url 'https://h/a%5Cb.fb' gives an invalid model file 'a\\\\b.fb': forbidden character(s) '\\\\'",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/a b.fb")',
            "url 'https://h/a b.fb' contains whitespace or a control character",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb?x=1")',
            "url 'https://h/m.fb?x=1' must not have a query or fragment",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb", sha256="abc")',
            "sha256 must be 64 hexadecimal digits, not 'abc'",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb", size=-1)',
            "size must be between 0 and 2**63 - 1, not -1",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb", size="1")',
            "size must be an int or None, not str",
        ),
        ('ns.samediff_model(5, "d", "https://h/m.fb")', "name must be a string, not int"),
        (
            'ns.gguf_model("m", "d", "no-slash")',
            "hugging_face_id must be 'owner/name', not 'no-slash'",
        ),
        (
            'ns.gguf_model("m", "d", "o/n", "../x.gguf")',
            "file_pattern '../x.gguf': segment '..' is not a plain name",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb", factory="nocolon")',
            "factory must be 'module:callable', not 'nocolon'",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb", python_name="Bad")',
            "python_name 'Bad' is not a valid generated name (the naming rule gives 'bad')",
        ),
        (
            'ns.samediff_model("m", "d", "https://h/m.fb", metadata={"x": float("nan")})',
            "metadata['x'] must be finite, not nan",
        ),
        (
            'ns.model("m", "d", "https://h/m.fb", framework="tf")',
            "framework must be one of DL4J, SAMEDIFF, ONNX (any case), not 'tf'",
        ),
        (
            'ns.dl4j_model("m", "d", "https://h/m.zip", model_type=ModelType.SAMEDIFF_PIPELINE)',
            "dl4j_model model_type must be COMP_GRAPH or SEQUENTIAL, not <ModelType.SAMEDIFF_PIPELINE: "
            "'SAMEDIFF_PIPELINE'>",
        ),
        (
            'ns.model("m", "d", "https://x/m.onnx", framework=Framework.ONNX, repository="onnx-model-zoo")',
            "url 'https://x/m.onnx' is not under 'https://github.com/onnx/models/raw/main/'",
        ),
        (
            'ns.samediff_model("m" * 65, "d", "https://h/m.fb")',
            f"Python name {'m' * 65!r} is longer than 64 characters; set a shorter python_name=",
        ),
    ],
)
def test_each_rule_reports_file_line_and_message(tmp_path: Path, call: str, message: str) -> None:
    assert errors(spec(tmp_path, call + "\n")) == [f"spec/s.py:4: {message}"]


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    spec_dir = spec(
        tmp_path,
        'ns.samediff_model("a", "", "https://h/a.fb")\n'
        + OK
        + 'ns.samediff_model("b", "d", "https://h/b.fb", sha256="x", size=-2)\n',
    )
    assert errors(spec_dir) == [
        "spec/s.py:4: documentation of model 'a' must not be blank",
        "spec/s.py:6: sha256 must be 64 hexadecimal digits, not 'x'",
        "spec/s.py:6: size must be between 0 and 2**63 - 1, not -2",
    ]


def test_name_collision_names_both_definitions(tmp_path: Path) -> None:
    spec_dir = spec(
        tmp_path,
        'ns.samediff_model("ResNet-18", "d", "https://h/a.fb")\n'
        'ns.samediff_model("res_net_18", "d", "https://h/b.fb")\n'
        'ns.samediff_model("ResNet-18", "d", "https://h/c.fb")\n',
    )
    assert errors(spec_dir) == [
        "spec/s.py:5: model 'res_net_18' and model 'ResNet-18' (spec/s.py:4) both become"
        " Python name 'res_net_18'; set python_name= on one",
        "spec/s.py:6: duplicate model name 'ResNet-18' (first defined at spec/s.py:4)",
    ]


def test_spec_that_raises_or_imports_a_missing_module(tmp_path: Path) -> None:
    spec_dir = spec(tmp_path, OK + "raise RuntimeError('boom')\n")
    (spec_dir / "t.py").write_text("import os\nimport no_such_module_xyz\n")
    assert errors(spec_dir) == [
        "spec/s.py:5: RuntimeError: boom",
        "spec/t.py:2: ModuleNotFoundError: No module named 'no_such_module_xyz'",
    ]


def test_missing_field_and_syntax_error(tmp_path: Path) -> None:
    spec_dir = spec(tmp_path, 'ns.samediff_model("m", "d")\n')
    (spec_dir / "u.py").write_text("x = (\n")
    lines = errors(spec_dir)
    assert lines[0] == (
        "spec/s.py:4: TypeError: NamespaceBuilder.samediff_model() missing 1 required"
        " positional argument: 'url'"
    )
    assert lines[1].startswith("spec/u.py:1: SyntaxError: ")


def test_bad_namespace_and_duplicate_package(tmp_path: Path) -> None:
    spec_dir = spec(tmp_path, OK)
    (spec_dir / "v.py").write_text(
        "from omnihub_compiler.dsl import NamespaceBuilder, framework_namespace\n"
        '@framework_namespace("Other", package="test")\n'
        "def a(ns: NamespaceBuilder) -> None: ...\n"
        '@framework_namespace("lower", package="class")\n'
        "def b(ns: NamespaceBuilder) -> None: ...\n"
    )
    lines = errors(spec_dir)
    assert (
        "spec/v.py:2: package 'test' is already declared by namespace 'TestModels' at spec/s.py:2"
        in lines
    )
    assert any(line.startswith("spec/v.py:4: namespace name 'lower' must be") for line in lines)
    assert any(line.startswith("spec/v.py:4: package 'class' must be") for line in lines)


def test_cli_prints_one_line_per_error_and_writes_nothing(tmp_path: Path) -> None:
    spec_dir = spec(tmp_path, 'ns.samediff_model("a", "", "https://h/a.fb")\n')
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "omnihub_compiler", str(spec_dir), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "spec/s.py:4: documentation of model 'a' must not be blank",
        "omnihub-compile: 1 error(s); nothing written",
    ]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_valid_spec_builds_entries(tmp_path: Path) -> None:
    (catalog,) = build_catalogs(spec(tmp_path, OK))
    (entry,) = catalog.models
    assert (entry.name, entry.python_name, entry.file, entry.source) == (
        "m",
        "m",
        "m.fb",
        "spec/s.py:4",
    )
    assert (
        entry.url
        == "https://media.githubusercontent.com/media/KonduitAI/omnihub-zoo/main/samediff/m.fb"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet18", "resnet18"),
        ("ResNet50", "res_net50"),
        ("vgg19NoTop", "vgg19_no_top"),
        ("HTTPServer", "http_server"),
        ("version-RFB-320", "version_rfb_320"),
        ("3d-unet", "model_3d_unet"),
        ("class", "class_"),
        ("match", "match_"),
        ("bool", "bool_"),
        ("!!!", "model"),
        ("Émotion ﬁ", "motion"),
    ],
)
def test_naming_rule_examples(name: str, expected: str) -> None:
    assert python_name(name) == expected


@given(st.text())
def test_naming_rule_gives_non_keyword_identifier_and_is_idempotent(name: str) -> None:
    result = python_name(name)
    assert result.isidentifier()
    assert result.isascii()
    assert not keyword.iskeyword(result)
    assert not keyword.issoftkeyword(result)
    assert result not in RESERVED
    assert not result.startswith("_")
    assert python_name(result) == result
    assert is_valid_python_name(result)


@given(st.text())
def test_documentation_normalisation_is_idempotent(text: str) -> None:
    once = normalize_documentation(text)
    assert normalize_documentation(once) == once
