"""Large namespaces: shard modules behind a PEP 562 ``__getattr__`` (small shard sizes here)."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.catalog import catalog_from_json
from omnihub_compiler.cli import main as compile_main
from omnihub_compiler.compile import compile_spec, render_tree
from omnihub_compiler.emit import HEADER
from omnihub_compiler.synthetic import write_synthetic_spec

from tests.compiler.golden import assert_matches_golden, black_formatted

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN_SHARDED = FIXTURES / "golden_sharded"


def _run(code: str, out: Path) -> str:
    """Run ``code`` in a fresh interpreter with ``out`` first on sys.path (and as argv[1])."""
    python_path = os.pathsep.join([str(out), str(REPO / "runtime")])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": python_path, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sharded_golden_tree() -> None:
    """Regenerate with: .venv/bin/python tests/compiler/regenerate_golden.py"""
    files = render_tree(FIXTURES / "spec", shard_size=2)
    assert_matches_golden(files, GOLDEN_SHARDED)


def test_small_namespaces_stay_one_module() -> None:
    assert render_tree(FIXTURES / "spec") == render_tree(FIXTURES / "spec", shard_size=5)
    sharded = render_tree(FIXTURES / "spec", shard_size=4)
    assert "omnihub_generated/fixture/_models_001.py" in sharded


def test_shard_layout_is_black_clean_and_complete(tmp_path: Path) -> None:
    write_synthetic_spec(tmp_path / "spec", 7, 1)
    files = render_tree(tmp_path / "spec", shard_size=3)
    base = "omnihub_generated/synthetic0"
    shards = sorted(rel for rel in files if rel.startswith(f"{base}/_models_"))
    assert shards == [f"{base}/_models_{k:03d}.py" for k in range(3)]
    defined: list[str] = []
    sizes: list[int] = []
    for rel in shards:
        text = files[rel].decode()
        assert text.startswith(f"# {HEADER}\n")
        assert black_formatted(rel, text) == text
        tree = ast.parse(text)
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert 1 <= len(functions) <= 3
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):  # docstring + one _load call
                assert len(node.body) == 2
                assert ast.unparse(node.body[1]).startswith("return _load('synthetic0', ")
        defined += functions
        sizes.append(len(functions))
    assert defined == sorted(f"model0_{i}" for i in range(7))
    assert sizes == [3, 2, 2]  # even shards: no tiny last one
    init = files[f"{base}/__init__.py"].decode()
    assert black_formatted("__init__.py", init) == init
    assert not [n for n in ast.parse(init).body if isinstance(n, ast.FunctionDef)]
    stub = files[f"{base}/__init__.pyi"].decode()
    assert black_formatted("__init__.pyi", stub) == stub
    stubbed = [n.name for n in ast.parse(stub).body if isinstance(n, ast.FunctionDef)]
    assert stubbed == defined


def test_shard_size_cli_option(tmp_path: Path) -> None:
    write_synthetic_spec(tmp_path / "spec", 5, 1)
    out = tmp_path / "out"
    assert compile_main([str(tmp_path / "spec"), "-o", str(out), "--shard-size", "2"]) == 0
    package = out / "omnihub_generated" / "synthetic0"
    assert sorted(p.name for p in package.glob("_models_*.py")) == [
        "_models_000.py",
        "_models_001.py",
        "_models_002.py",
    ]
    with pytest.raises(SystemExit):
        compile_main([str(tmp_path / "spec"), "-o", str(out), "--shard-size", "0"])


def test_sharded_namespace_behaves_like_one_module(tmp_path: Path) -> None:
    write_synthetic_spec(tmp_path / "spec", 7, 1)
    out = tmp_path / "out"
    compile_spec(tmp_path / "spec", out, shard_size=3)
    stdout = _run(
        """
        import inspect, pickle, pydoc, sys
        import omnihub_generated.synthetic0 as m

        loaded = sorted(n for n in sys.modules if n.startswith("omnihub"))
        assert loaded == ["omnihub", "omnihub._entry", "omnihub._shards",
                          "omnihub.generated_api", "omnihub_generated",
                          "omnihub_generated.synthetic0"], loaded
        names = [f"model0_{i}" for i in range(7)]
        assert m.__all__ == ["Synthetic0Models", *sorted(names)]
        assert set(m.__all__) <= set(dir(m))
        from omnihub_generated.synthetic0 import model0_4
        assert "omnihub_generated.synthetic0._models_001" in sys.modules
        assert "omnihub_generated.synthetic0._models_002" not in sys.modules
        assert model0_4 is m.model0_4 and model0_4.__module__ == "omnihub_generated.synthetic0"
        assert str(inspect.signature(model0_4)) == (
            "(*, force_download: 'bool' = False) -> 'SameDiffGraph'")
        doc = "Synthetic model 4 of namespace 0.\\n\\nUsed for benchmarks."
        assert inspect.getdoc(model0_4) == doc
        assert "Synthetic model 4 of namespace 0." in pydoc.render_doc(m.model0_4)
        assert pickle.loads(pickle.dumps(m.model0_6)) is m.model0_6
        for bad in ("nope", "_models_009", "__wrapped__"):
            try:
                getattr(m, bad)
            except AttributeError as exc:
                assert repr(bad) in str(exc)
            else:
                raise AssertionError(bad)
        star = {}
        exec("from omnihub_generated.synthetic0 import *", star)
        assert all(star[n] is getattr(m, n) for n in names)
        from omnihub_generated.pretrained import Pretrained
        ns = Pretrained.synthetic0()
        cls = type(ns)
        assert cls is m.Synthetic0Models and cls.__module__ == "omnihub_generated.synthetic0"
        assert "every model as a static method" in cls.__doc__
        assert isinstance(inspect.getattr_static(cls, "model0_5"), staticmethod)
        assert ns.model0_5 is m.model0_5 and cls.model0_1 is m.model0_1
        assert isinstance(inspect.getattr_static(cls, "model0_5"), staticmethod)
        assert set(names) <= set(dir(cls))
        print("ok")
        """,
        out,
    )
    assert stdout == "ok\n"


def test_catalogue_consumers_do_not_need_the_shards(tmp_path: Path) -> None:
    """omnihub.search and omnihub._entry read _catalog.json, never the functions."""
    write_synthetic_spec(tmp_path / "spec", 7, 1)
    out = tmp_path / "out"
    compile_spec(tmp_path / "spec", out, shard_size=3)
    stdout = _run(
        """
        import sys
        from omnihub._entry import entry_for
        from omnihub.search import Criteria, list_models
        entry = entry_for("synthetic0", "model0_6")
        assert entry.name == "model0_6" and entry.package == "synthetic0", entry
        found = list_models(Criteria(package="synthetic0"), path=[sys.argv[1]])
        assert [m.python_name for m in found] == [f"model0_{i}" for i in range(7)], found
        assert not [n for n in sys.modules if "_models_" in n]
        print("ok")
        """,
        out,
    )
    assert stdout == "ok\n"


def test_stale_shards_are_removed(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write_synthetic_spec(spec, 7, 1)
    out = tmp_path / "out"
    package = out / "omnihub_generated" / "synthetic0"
    compile_spec(spec, out, shard_size=2)
    assert len(list(package.glob("_models_*.py"))) == 4
    diff = compile_spec(spec, out, shard_size=3)
    assert {Path(r).name for r in diff.removed} == {"_models_003.py"}
    assert len(list(package.glob("_models_*.py"))) == 3
    diff = compile_spec(spec, out)  # back to one module
    assert {Path(r).name for r in diff.removed} == {f"_models_00{k}.py" for k in range(3)}
    assert not list(package.glob("_models_*.py"))
    assert compile_spec(spec, out, check=True, shard_size=3).changed


def test_mypy_strict_and_stubtest_on_sharded_fixture(tmp_path: Path) -> None:
    out = tmp_path / "out"
    compile_spec(FIXTURES / "spec", out, shard_size=2)
    gen = out / "omnihub_generated"
    assert len(list((gen / "fixture").glob("_models_*.py"))) == 3
    user = tmp_path / "user.py"
    user.write_text(
        "from omnihub_generated.pretrained import Pretrained\n"
        "from omnihub_generated.fixture import FixtureModels, resnet18\n"
        "from omnihub.loaders.samediff import SameDiffGraph\n"
        "a: SameDiffGraph = Pretrained.fixture().resnet18(force_download=True)\n"
        "b: SameDiffGraph = resnet18(force_download=False)\n"
        "c: SameDiffGraph = FixtureModels.resnet18()\n"
    )
    config = ["--config-file", str(REPO / "pyproject.toml")]
    mypy_env = {**os.environ, "MYPYPATH": f"{out}:{REPO / 'runtime'}"}
    for target in (["-p", "omnihub_generated"], [str(user)]):
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", *config, *target],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env=mypy_env,
        )
        assert result.returncode == 0, result.stdout
    # The .py files alone (shards and the lazy __init__) type-check too.
    copy = tmp_path / "py_only"
    shutil.copytree(gen, copy / "omnihub_generated", ignore=shutil.ignore_patterns("*.pyi"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *config, "-p", "omnihub_generated"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MYPYPATH": f"{copy}:{REPO / 'runtime'}"},
    )
    assert result.returncode == 0, result.stdout
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "omnihub_generated.fixture",
            "omnihub_generated.pretrained",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": f"{out}:{REPO / 'runtime'}", "MYPYPATH": str(out)},
    )
    assert result.returncode == 0, result.stdout


# --- hypothesis: compile -> import -> same catalogue, sharded ---------------------------------

_word = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}", fullmatch=True)
_doc = st.text(st.characters(exclude_categories=["Cs"]), max_size=30).map("Doc {}".format)


@st.composite
def _spec(draw: st.DrawFn) -> tuple[list[tuple[str, str]], int]:
    names = draw(st.lists(_word, min_size=2, max_size=12, unique_by=str.lower))
    docs = [draw(_doc) for _ in names]
    return list(zip([f"{n}{i}" for i, n in enumerate(names)], docs, strict=True)), draw(
        st.integers(min_value=1, max_value=4)
    )


_counter = iter(range(10**9))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=_spec())
def test_sharded_compile_import_round_trip(
    tmp_path: Path, spec: tuple[list[tuple[str, str]], int]
) -> None:
    rows, shard_size = spec
    package = f"shard{next(_counter)}"
    root = tmp_path / package
    (root / "spec").mkdir(parents=True)
    lines = [
        "from omnihub_compiler.dsl import NamespaceBuilder, framework_namespace",
        f"@framework_namespace({package.title()!r}, package={package!r})",
        "def ns_(ns: NamespaceBuilder) -> None:",
        *(
            f"    ns.samediff_model({name!r}, {doc!r}, 'https://example.org/z/{name}.fb')"
            for name, doc in rows
        ),
    ]
    (root / "spec" / "s.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = root / "out"
    compile_spec(root / "spec", out, shard_size=shard_size)
    base = out / "omnihub_generated" / package
    for path in base.glob("*.py*"):
        text = path.read_text(encoding="utf-8")
        assert black_formatted(path.name, text) == text, path.name
    shards = sorted(base.glob("_models_*.py"))
    assert len(shards) == (0 if len(rows) <= shard_size else -(-len(rows) // shard_size))
    catalog = catalog_from_json((base / "_catalog.json").read_bytes())
    sys.path.insert(0, str(out))
    try:
        module = importlib.import_module(f"omnihub_generated.{package}")
    finally:
        sys.path.remove(str(out))
    assert len(catalog.models) == len(rows)
    expected = sorted([catalog.namespace, *(m.python_name for m in catalog.models)])
    assert sorted(module.__all__) == expected
    assert set(expected) <= set(dir(module))
    cls = getattr(module, catalog.namespace)
    for entry in catalog.models:
        function = getattr(module, entry.python_name)
        assert function.__module__ == module.__name__
        assert inspect.getdoc(function) == entry.documentation
        assert str(inspect.signature(function)).startswith("(*, force_download: 'bool' = False)")
        assert getattr(cls(), entry.python_name) is function
