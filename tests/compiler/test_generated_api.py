"""The public, versioned contract for generated code (issue 14 item 6)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omnihub import generated_api
from omnihub_compiler import emit
from omnihub_compiler.compile import compile_spec, render_tree
from omnihub_compiler.errors import CompileError

REPO = Path(__file__).resolve().parents[2]
FIXTURE_SPEC = Path(__file__).resolve().parent / "fixtures" / "spec"


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported at run time (not under ``if TYPE_CHECKING``)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.ClassDef):
            for method in ast.walk(node):
                if isinstance(method, ast.ImportFrom) and method.module:
                    found.append(method.module)
    return found


@pytest.mark.parametrize("shard_size", [256, 2])
def test_generated_code_imports_only_the_public_api(shard_size: int) -> None:
    files = render_tree(FIXTURE_SPEC, shard_size=shard_size)
    modules = {
        module
        for path, content in files.items()
        if path.endswith(".py")
        for module in _runtime_imports(ast.parse(content))
    }
    omnihub_modules = {m for m in modules if m.split(".")[0] == "omnihub"}
    assert {m for m in modules - omnihub_modules if m.split(".")[0] != "omnihub_generated"} == {
        "__future__"
    }
    assert omnihub_modules == {"omnihub.generated_api"}
    every = {
        n.module
        for path, content in files.items()
        if path.endswith((".py", ".pyi"))
        for n in ast.walk(ast.parse(content))
        if isinstance(n, ast.ImportFrom) and n.module
    }
    private = [m for m in every if any(p.startswith("_") for p in m.split(".")[1:])]
    assert private == []


def test_the_repository_generated_tree_uses_only_the_public_api() -> None:
    for path in (REPO / "generated" / "omnihub_generated").rglob("*.py*"):
        text = path.read_text()
        assert "omnihub._" not in text, path


def test_the_compiler_imports_no_private_runtime_module() -> None:
    for path in (REPO / "compiler" / "omnihub_compiler").rglob("*.py"):
        text = path.read_text()
        assert "from omnihub._" not in text, path
        assert "import omnihub._" not in text, path


def test_require_api_accepts_supported_and_names_the_fix_otherwise() -> None:
    generated_api.require_api(generated_api.API_VERSION, "omnihub_generated.x")
    with pytest.raises(ImportError) as info:
        generated_api.require_api(generated_api.API_VERSION + 1, "omnihub_generated.x")
    message = str(info.value)
    assert message.startswith(
        f"omnihub_generated.x was compiled by omnihub-compile for generated-code API"
        f" {generated_api.API_VERSION + 1}, but the installed omnihub"
    )
    assert "install an omnihub that supports it" in message


def test_a_package_compiled_for_a_newer_api_fails_at_import_with_that_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emit, "GENERATED_API", 2)
    monkeypatch.setattr(generated_api, "SUPPORTED_API_VERSIONS", frozenset({1, 2}))
    compile_spec(FIXTURE_SPEC, tmp_path / "out")  # as a newer compiler + runtime would
    result = subprocess.run(
        [sys.executable, "-c", "import omnihub_generated.fixture"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "out")},
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "ImportError: omnihub_generated.fixture was compiled by omnihub-compile for"
            " generated-code API 2, but the installed omnihub"
        )
    )


def test_the_compiler_refuses_an_api_the_runtime_does_not_provide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emit, "GENERATED_API", 99)
    out = tmp_path / "out"
    with pytest.raises(CompileError) as info:
        compile_spec(FIXTURE_SPEC, out)
    assert info.value.lines[0].startswith("omnihub-compile emits generated-code API 99, but")
    assert not out.exists()
