"""Prove the generated code imports before anything is written.

Validation keeps identifiers legal, but "exit 0" must mean "the output imports": every
generated ``.py``/``.pyi`` is compiled in memory, and every ``.py`` is executed in a fresh
module namespace (the generated modules only define functions and a class and import
``omnihub.generated_api``, so executing them is cheap and has no side effects). A failure
is a compiler bug or an identifier rule gap; it is reported as one line per file naming the
file and the exception, and the compile writes nothing.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

from omnihub_compiler.emit import GENERATED_ROOT

__all__ = ["import_problems"]


def _module_name(path: str) -> str:
    """``omnihub_generated/x/__init__.py`` -> ``omnihub_generated.x``; shards keep their name."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_problems(files: Mapping[str, bytes]) -> list[str]:
    """One ``<path>: generated code does not import: <error>`` line per broken module."""
    problems: list[str] = []
    for path, content in sorted(files.items()):
        if not path.startswith(f"{GENERATED_ROOT}/") or not path.endswith((".py", ".pyi")):
            continue
        try:
            code = compile(content, path, "exec", dont_inherit=True)
            if path.endswith(".py"):
                name = _module_name(path)
                module = types.ModuleType(name)
                module.__file__ = path
                if path.endswith("/__init__.py"):
                    module.__path__ = []
                module.__package__ = (
                    name if path.endswith("/__init__.py") else name.rpartition(".")[0]
                )
                exec(code, module.__dict__)
                missing = [n for n in module.__dict__.get("__all__", ()) if not _has(module, n)]
                if missing:
                    raise ImportError(f"__all__ names undefined {', '.join(missing[:5])}")
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(
                f"{path}: generated code does not import: {type(exc).__name__}: {first}"
            )
    return problems


def _has(module: types.ModuleType, name: str) -> bool:
    """Whether ``name`` is bound or lazily provided (sharded packages define ``__getattr__``)."""
    return name in module.__dict__ or "__getattr__" in module.__dict__
