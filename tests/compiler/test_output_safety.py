"""Exit 0 means the output imports and is right (issue 16, items 1, 2, 4, 5 and 6)."""

from __future__ import annotations

import keyword
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub_compiler.compile import build_catalogs, compile_spec, render_tree
from omnihub_compiler.errors import CompileError
from omnihub_compiler.verify import import_problems

IMPORTS = (
    "from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL as U, NamespaceBuilder,"
    " framework_namespace\n"
)
MODEL = '    ns.samediff_model("m", "Doc.", f"{U}/samediff/m.fb")\n'


def namespace(name: str, package: str, body: str = MODEL) -> str:
    return (
        f"@framework_namespace({name!r}, package={package!r})\n"
        f"def ns_{abs(hash((name, package)))}(ns: NamespaceBuilder) -> None:\n{body}"
    )


def write_spec(tmp_path: Path, text: str, name: str = "s.py") -> Path:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / name).write_text(text)
    return spec_dir


def errors(spec_dir: Path) -> list[str]:
    with pytest.raises(CompileError) as info:
        build_catalogs(spec_dir)
    return info.value.lines


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnihub_compiler", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


# -- item 1: names that would not import are spec errors ------------------------------------


@pytest.mark.parametrize("name", ["None", "True", "False", "Pretrained", "TYPE_CHECKING"])
def test_a_keyword_or_reserved_namespace_name_is_a_spec_error(tmp_path: Path, name: str) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace(name, "p"))
    (line,) = errors(spec_dir)
    assert line.startswith(f"spec/s.py:2: namespace name {name!r} must be an ASCII identifier")


@pytest.mark.parametrize("package", ["staticmethod", "bool", "annotations", "match", "type", "_x"])
def test_a_package_the_generated_code_uses_is_a_spec_error(tmp_path: Path, package: str) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace("Models", package))
    (line,) = errors(spec_dir)
    assert line.startswith(f"spec/s.py:2: package {package!r} must be a lower-case identifier")


def test_cli_rejects_namespace_none_and_writes_nothing(tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace("None", "none_"))
    result = run_cli(str(spec_dir), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert "namespace name 'None'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_import_problems_reports_syntax_and_class_body_failures() -> None:
    files = {
        "omnihub_generated/a/__init__.py": b"class None:\n    pass\n",
        "omnihub_generated/b/__init__.py": (
            b"class P:\n    def staticmethod(): ...\n    @staticmethod\n    def x(): ...\n"
        ),
        "omnihub_generated/c/__init__.py": b"__all__ = ['f']\n",
        "omnihub_generated/d/__init__.pyi": b"def f() -> int: ...\n",
        "pyproject.toml": b"not python",
    }
    problems = import_problems(files)
    assert [p.split(":")[0] for p in problems] == [
        "omnihub_generated/a/__init__.py",
        "omnihub_generated/b/__init__.py",
        "omnihub_generated/c/__init__.py",
    ]
    assert "SyntaxError" in problems[0]
    assert "TypeError" in problems[1]
    assert "__all__ names undefined f" in problems[2]


_NAMESPACE = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,12}", fullmatch=True)
_PACKAGE = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(name=_NAMESPACE, package=_PACKAGE)
def test_every_accepted_namespace_compiles_to_code_that_imports(
    tmp_path_factory: pytest.TempPathFactory, name: str, package: str
) -> None:
    tmp_path = tmp_path_factory.mktemp("ns")
    spec_dir = write_spec(tmp_path, IMPORTS + namespace(name, package))
    unsafe = (
        keyword.iskeyword(name)
        or name in ("Pretrained", "TYPE_CHECKING")
        or keyword.iskeyword(package)
        or keyword.issoftkeyword(package)
        or package in ("pretrained", "staticmethod", "bool", "annotations")
        or "__" in package
        or package.endswith("_")
    )
    if unsafe:  # rejected names are exactly the unsafe ones
        with pytest.raises(CompileError):
            render_tree(spec_dir)
    else:
        assert import_problems(render_tree(spec_dir)) == []


# -- item 2: an empty or wrong spec directory is an error and the output stays ---------------


def _tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no spec modules (*.py) in the spec directory"),
        ({"README.md": "notes"}, "no spec modules (*.py) in the spec directory"),
        (
            {"helpers.py": "X = 1\n"},
            "the spec modules declare no @framework_namespace; nothing to compile",
        ),
        (
            {"s.py": IMPORTS + namespace("Models", "models", "    pass\n")},
            "the spec modules declare no models; nothing to compile",
        ),
    ],
)
def test_an_empty_or_wrong_spec_dir_is_an_error_and_leaves_the_output(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    good = write_spec(tmp_path / "good", IMPORTS + namespace("Models", "models"))
    out = tmp_path / "out"
    compile_spec(good, out)
    before = _tree(out)
    assert "omnihub_generated/models/__init__.py" in before
    bad = tmp_path / "spec"
    bad.mkdir()
    for name, text in files.items():
        (bad / name).write_text(text)
    result = run_cli(str(bad), "-o", str(out), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"{bad}: {message}"
    assert _tree(out) == before
