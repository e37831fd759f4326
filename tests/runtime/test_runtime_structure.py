"""The runtime's shape: no import cycle, every module importable alone, no reaching into
the private parts of requests/urllib3/http.client/socket, download/ parts kept apart."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.helpers import REPO, child_env

RUNTIME = REPO / "runtime"
PACKAGE = RUNTIME / "omnihub"

#: Private attributes of third-party HTTP and socket objects the runtime must never touch.
FORBIDDEN = (
    "._fp",
    "._sock",
    ".raw._",
    "HTTPResponse.length",
    "._original_response",
    "._connection",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(RUNTIME).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _executed(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (type-only imports
    never run, so they cannot form an import cycle)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every omnihub module ``name`` imports when it runs, at module level or inside a
    function (type-only imports excluded)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _executed(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # Importing a submodule runs its package's __init__ first: not an edge worth a cycle.
    return {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_type_only_imports_are_not_edges() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "def f():\n    import c\n"
    )
    names = {a.name for n in _executed(tree) if isinstance(n, ast.Import) for a in n.names}
    assert names == {"b", "c"}


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_module_level_or_deferred() -> None:
    assert _cycle(_graph()) is None


def test_download_parts_do_not_import_each_other() -> None:
    graph = _graph()
    private = [n for n in graph if n.startswith("omnihub.download._")]
    assert len(private) >= 4
    for name in private:
        assert not {t for t in graph[name] if t.startswith("omnihub.download")}, name
    assert all(
        not t.startswith("omnihub.download")
        for n, ts in graph.items()
        for t in ts
        if not n.startswith("omnihub.download") and t != "omnihub.download"
    )


def test_no_private_attribute_of_http_objects_is_touched() -> None:
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(pattern in line for pattern in FORBIDDEN)
    ]
    assert hits == []


def test_the_grep_would_see_one(tmp_path: Path) -> None:
    line = "fp = getattr(response.raw, '_fp', None); sock = fp.raw._sock"
    assert any(pattern in line.replace("'", "").replace(", ", ".") for pattern in FORBIDDEN)


@pytest.mark.parametrize(
    "group", ["omnihub.download", "omnihub.cache omnihub.layout omnihub.locking omnihub.hub"]
)
def test_every_module_imports_alone(group: str) -> None:
    """Each module in a fresh interpreter of its own (a hidden cycle fails here)."""
    names = [n for n in _modules() if any(n == g or n.startswith(g + ".") for g in group.split())]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", f"import {name}"],
            cwd=REPO,
            env=child_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    failures = {n: c.communicate(timeout=120)[1] for n, c in zip(names, children, strict=True)}
    assert {n: err for n, err in failures.items() if err} == {}
