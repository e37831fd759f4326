# ruff: noqa: E501, RUF001 -- long expected lines; lookalike unicode is the point
"""Emission, formatting, the generated tree on disk, and the committed generated/ being current."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub import Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry, catalog_from_json, catalog_to_json
from omnihub_compiler.catalog_json import catalog_json
from omnihub_compiler.compile import compile_spec, render_tree
from omnihub_compiler.errors import CompileError
from omnihub_compiler.synthetic import write_synthetic_spec

from tests.compiler.golden import assert_matches_golden, black_formatted

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = FIXTURES / "golden"


def test_golden_tree() -> None:
    """Regenerate with: .venv/bin/python tests/compiler/regenerate_golden.py"""
    files = render_tree(FIXTURES / "spec")
    assert_matches_golden(files, GOLDEN)


def test_two_compiles_are_byte_identical_and_black_clean() -> None:
    first = render_tree(REPO / "spec")
    assert render_tree(REPO / "spec") == first
    for rel, content in first.items():
        if rel.endswith((".py", ".pyi")):
            text = content.decode()
            assert black_formatted(rel, text) == text, rel
            ast.parse(text)


def test_generated_is_current() -> None:
    """CI relies on this: `omnihub-compile spec/ -o generated/ --docs docs/models.md --check` exits 0."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnihub_compiler",
            "spec",
            "-o",
            "generated",
            "--docs",
            "docs/models.md",
            "--check",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_real_zoo_contents() -> None:
    from omnihub_generated.pretrained import Pretrained
    from omnihub_generated.samediff import resnet18

    assert "Resnet18 trained on imagenet" in (inspect.getdoc(resnet18) or "")
    assert Pretrained.samediff().resnet18 is resnet18
    catalogs = {
        p.parent.name: catalog_from_json(p.read_bytes())
        for p in (REPO / "generated" / "omnihub_generated").glob("*/_catalog.json")
    }
    counts = {k: len(c.models) for k, c in catalogs.items()}
    assert counts == {"samediff": 17, "dl4j": 1, "onnx": 184, "huggingface": 2}
    names = {m.python_name for c in catalogs.values() for m in c.models}
    assert {"age_googlenet", "resnet18", "vgg19_no_top", "alex_net_opset12"} <= names
    onnx = catalogs["onnx"].by_python_name()["alex_net_opset12"]
    assert onnx.repository == "onnx-model-zoo"
    assert onnx.url == "https://github.com/onnx/models/raw/main/" + onnx.file
    assert onnx.metadata["opset"] == 12
    assert onnx.sha256 is not None
    formats = {m.format for m in catalogs["huggingface"].models}
    assert formats == {Format.GGUF, Format.SAFETENSORS}


def test_mypy_strict_and_stubtest_on_generated(tmp_path: Path) -> None:
    gen = REPO / "generated"
    user = tmp_path / "user.py"
    user.write_text(
        "from omnihub_generated.pretrained import Pretrained\n"
        "from omnihub_generated.samediff import resnet18\n"
        "from omnihub.loaders.samediff import SameDiffGraph\n"
        "a: SameDiffGraph = Pretrained.samediff().resnet18(force_download=True)\n"
        "b: SameDiffGraph = resnet18(force_download=False)\n"
    )
    env = {**os.environ, "MYPYPATH": f"{gen}:{REPO / 'runtime'}"}
    for target in (["-p", "omnihub_generated"], [str(user)]):
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", *target],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert result.returncode == 0, result.stdout
    # The .py sources too (mypy prefers the .pyi when both exist): check a copy without stubs.
    copy = tmp_path / "py_only"
    shutil.copytree(
        gen / "omnihub_generated",
        copy / "omnihub_generated",
        ignore=shutil.ignore_patterns("*.pyi", "__pycache__"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "-p",
            "omnihub_generated",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MYPYPATH": f"{copy}:{REPO / 'runtime'}"},
    )
    assert result.returncode == 0, result.stdout
    packages = sorted(
        p.name for p in (gen / "omnihub_generated").iterdir() if (p / "__init__.py").exists()
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *(f"omnihub_generated.{p}" for p in packages)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": f"{gen}:{REPO / 'runtime'}", "MYPYPATH": str(gen)},
    )
    assert result.returncode == 0, result.stdout


# --- hypothesis: random and hostile specs ---------------------------------------------------

HOSTILE = [
    '"""',
    "'''",
    "\\",
    "\\\\",
    "\x00",
    "\n",
    "\r\n",
    "\u2028",
    "\u2029",
    "\x0c",
    "\t",
    '"',
    "__import__('os').system('touch /tmp/pwned')",
    "\u00a0",
    "\ufeff",
    "ｅｖａｌ",
    "𝕒",
    "é",
    "x" * 300,
    "); import os; (",
    "{}",
    "#",
    "\\N{BULLET}",
    "\\x41",
]
hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)), min_size=1, max_size=6
).map("".join)


@st.composite
def model_rows(draw: st.DrawFn) -> list[dict[str, object]]:
    n = draw(st.integers(min_value=1, max_value=5))
    rows: list[dict[str, object]] = []
    for i in range(n):
        rows.append(
            {
                "name": draw(hostile_text) + f" {i}",
                "documentation": draw(hostile_text),
                "file": draw(st.sampled_from(["m.fb", "a b.fb", "ü/x.onnx", "%41.fb", "q'\"x.fb"])),
                "kind": draw(st.sampled_from(["samediff_model", "model", "gguf_model"])),
                "license": draw(st.none() | hostile_text),
                "tags": draw(st.lists(hostile_text, max_size=2)),
                "meta": draw(
                    st.dictionaries(hostile_text, hostile_text | st.integers(), max_size=2)
                ),
            }
        )
    return rows


def _write_rows(spec_dir: Path, rows: list[dict[str, object]], package: str) -> None:
    lines = [
        "from omnihub_compiler.dsl import Framework, NamespaceBuilder, framework_namespace",
        f"@framework_namespace({package.title()!r}, package={package!r})",
        "def ns_(ns: NamespaceBuilder) -> None:",
    ]
    for row in rows:
        common = f"license={row['license']!r}, tags={row['tags']!r}, metadata={row['meta']!r}"
        url = "https://example.org/zoo/" + str(row["file"]).replace(" ", "%20")
        if row["kind"] == "samediff_model":
            lines.append(
                f"    ns.samediff_model({row['name']!r}, {row['documentation']!r}, {url!r}, {common})"
            )
        elif row["kind"] == "model":
            lines.append(
                f"    ns.model({row['name']!r}, {row['documentation']!r}, {url!r},"
                f" framework=Framework.ONNX, {common})"
            )
        else:
            lines.append(
                f"    ns.gguf_model({row['name']!r}, {row['documentation']!r}, 'own/repo',"
                f" {str(row['file']).replace(' ', '_')!r}, {common})"
            )
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "s.py").write_text("\n".join(lines) + "\n", encoding="utf-8")


_counter = iter(range(10**9))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=model_rows())
def test_hostile_specs_error_cleanly_or_round_trip(
    tmp_path: Path, rows: list[dict[str, object]]
) -> None:
    package = f"hyp{next(_counter)}"
    root = tmp_path / package
    _write_rows(root / "spec", rows, package)
    try:
        files = render_tree(root / "spec")
    except CompileError as exc:
        for line in exc.lines:
            assert line.startswith("spec/s.py:"), line
            assert int(line.split(":")[1]) >= 4
        return
    # Formatting is black's, and only the shapes we emit appear: every string constant that
    # is not a docstring is an identifier, so no spec text can become code.
    for rel, content in files.items():
        if not rel.endswith((".py", ".pyi")):
            continue
        text = content.decode()
        assert black_formatted(rel, text) == text
        tree = ast.parse(text)
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
            ):
                assert node.value.replace(".", "_").isidentifier(), node.value
            assert not isinstance(node, (ast.Lambda, ast.Subscript, ast.BinOp, ast.JoinedStr))
    out = root / "out"
    compile_spec(root / "spec", out)
    catalog = catalog_from_json(
        (out / "omnihub_generated" / package / "_catalog.json").read_bytes()
    )
    sys.path.insert(0, str(out))
    try:
        before = set(sys.modules)
        module = importlib.import_module(f"omnihub_generated.{package}")
        new_modules = set(sys.modules) - before
        assert all(m.startswith(("omnihub_generated", "omnihub")) for m in new_modules), new_modules
    finally:
        sys.path.remove(str(out))
    module = sys.modules[f"omnihub_generated.{package}"]
    assert len(catalog.models) == len(rows)
    by_name = {str(r["name"]): r for r in rows}
    for entry in catalog.models:
        function = getattr(module, entry.python_name)
        assert inspect.getdoc(function) == entry.documentation
        assert str(inspect.signature(function)).startswith("(*, force_download: 'bool' = False)")
        row = by_name[entry.name]
        assert entry.license == row["license"]
        assert list(entry.tags) == row["tags"]
        assert dict(entry.metadata) == row["meta"]
        if entry.url is not None:
            assert entry.url == "https://example.org/zoo/" + str(row["file"]).replace(" ", "%20")
        assert getattr(module.__dict__[catalog.namespace], entry.python_name) is function


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    spec_dir = tmp_path / "spec"
    _write_rows(
        spec_dir,
        [
            {
                "name": "__import__('os').system('touch pwned')",
                "documentation": '"""\n__import__("os").system("touch pwned")\n"""',
                "file": "m.fb",
                "kind": "samediff_model",
                "license": None,
                "tags": [],
                "meta": {},
            }
        ],
        "sidefx",
    )
    compile_spec(spec_dir, tmp_path / "out")
    code = "import sys; import omnihub_generated.sidefx as m; print(sorted(n for n in sys.modules if n.startswith('omnihub')))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "out")},
    )
    assert not marker.exists()
    assert json.loads(result.stdout.replace("'", '"')) == [
        "omnihub",
        "omnihub._entry",
        "omnihub._shards",
        "omnihub.generated_api",
        "omnihub_generated",
        "omnihub_generated.sidefx",
    ]


# --- the writer --------------------------------------------------------------------------------


def test_writes_only_changed_files_and_removes_stale_ones(tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    write_synthetic_spec(spec_dir, 6, 2)
    out = tmp_path / "out"
    assert compile_spec(spec_dir, out)
    root = out / "omnihub_generated"
    foreign = root / "synthetic0" / "notes.txt"
    foreign.write_text("mine")
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert not compile_spec(spec_dir, out, force=True)  # nothing changed: nothing written
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    (spec_dir / "ns1.py").unlink()
    diff = compile_spec(spec_dir, out)
    assert set(diff.removed) == {
        f"omnihub_generated/synthetic1/{n}"
        for n in ("__init__.py", "__init__.pyi", "py.typed", "_catalog.json")
    }
    assert not (root / "synthetic1").exists()
    assert foreign.read_text() == "mine"
    assert (root / "synthetic0" / "__init__.py").stat().st_mtime_ns == mtimes[
        root / "synthetic0" / "__init__.py"
    ]
    assert not (out / "omnihub_generated" / "__init__.py").exists()  # PEP 420


def test_check_lists_differences_and_failed_compile_leaves_tree(tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    write_synthetic_spec(spec_dir, 3, 1)
    out = tmp_path / "out"
    compile_spec(spec_dir, out)
    init = out / "omnihub_generated" / "synthetic0" / "__init__.py"
    init.write_text(init.read_text() + "# edited\n")
    result = subprocess.run(
        [sys.executable, "-m", "omnihub_compiler", str(spec_dir), "-o", str(out), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["would write omnihub_generated/synthetic0/__init__.py"]
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (spec_dir / "bad.py").write_text("raise ValueError('no')\n")
    with pytest.raises(CompileError):
        compile_spec(spec_dir, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_killed_compile_leftovers_are_recovered(tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    write_synthetic_spec(spec_dir, 2, 1)
    out = tmp_path / "out"
    compile_spec(spec_dir, out)
    # A run killed between the two fallback renames: only the old tree remains, set aside.
    os.rename(out / "omnihub_generated", out / ".omnihub_generated.old-1")
    (out / ".omnihub_generated.tmp-2").mkdir()
    assert not compile_spec(spec_dir, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["omnihub_generated", "pyproject.toml"]


# --- catalogue JSON fast path -----------------------------------------------------------------

_text = st.text(min_size=1, max_size=12)
_entries = st.builds(
    ModelEntry,
    name=_text,
    python_name=st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    namespace=st.just("NS"),
    package=st.just("pkg"),
    framework=st.sampled_from(Framework),
    model_type=st.sampled_from(ModelType),
    format=st.sampled_from(Format),
    documentation=_text,
    file=_text,
    url=st.none() | _text,
    pretrained=st.booleans(),
    sha256=st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    size=st.none() | st.integers(min_value=0),
    tags=st.lists(_text, max_size=3).map(tuple),
    metadata=st.dictionaries(
        _text,
        _text | st.integers() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
        max_size=3,
    ),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(_entries, min_size=1, max_size=3), st.integers(min_value=200, max_value=210))
def test_fast_catalog_json_equals_catalog_to_json(models: list[ModelEntry], repeat: int) -> None:
    many = tuple((models * repeat)[:repeat])
    catalog = Catalog(namespace="NS", package="pkg", models=many)
    assert catalog_json(catalog) == catalog_to_json(catalog)
