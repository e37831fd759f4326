"""Import spec/*.py as isolated modules and run every ``@framework_namespace`` they declare.

Each spec file is executed as a fresh module named ``omnihub_spec_<n>`` that is removed from
``sys.modules`` afterwards, so specs cannot see each other's state and a compile is
repeatable in one process. A file that raises (including ``ImportError`` for a missing
module) is reported as ``spec/<file>.py:<line>: <ExceptionType>: <message>`` at the deepest
frame inside that spec file, and loading continues with the other files so that all errors
are reported together.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

import attrs

from omnihub_compiler.dsl import FrameworkNamespace, ModelDefinition, NamespaceBuilder
from omnihub_compiler.errors import SpecError
from omnihub_compiler.manifest import ManifestError

__all__ = ["LoadedNamespace", "load_spec", "spec_files"]


@attrs.frozen(kw_only=True)
class LoadedNamespace:
    """One namespace with the models its function recorded."""

    name: str
    package: str
    file: str  # display path of the spec file
    line: int
    models: tuple[ModelDefinition, ...]

    @property
    def location(self) -> str:
        """``spec/<file>.py:<line>`` of the decorated function."""
        return f"{self.file}:{self.line}"


def spec_files(spec_dir: Path) -> list[Path]:
    """The spec files of ``spec_dir``: ``*.py`` not starting with ``_``, sorted."""
    return sorted(p for p in spec_dir.glob("*.py") if not p.name.startswith("_"))


def _display(spec_dir: Path, path: Path) -> str:
    return f"{spec_dir.name or spec_dir.resolve().name}/{path.relative_to(spec_dir).as_posix()}"


def _located(exc: BaseException, known: dict[str, str], fallback: str) -> str:
    """``file:line`` of the innermost traceback frame inside a spec file."""
    explicit = getattr(exc, "location", None)
    if isinstance(explicit, str):  # a ManifestError knows its manifest entry
        return explicit
    location = fallback
    for frame in traceback.extract_tb(exc.__traceback__):
        shown = known.get(frame.filename)
        if shown is not None:
            location = f"{shown}:{frame.lineno}"
    if isinstance(exc, SyntaxError) and exc.filename in known and exc.lineno:
        location = f"{known[exc.filename]}:{exc.lineno}"
    return location


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ManifestError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    kind = type(exc).__name__
    return f"{kind}: {text}" if text else kind


def load_spec(spec_dir: Path) -> tuple[list[LoadedNamespace], list[SpecError]]:
    """Load every namespace in ``spec_dir``; return them and every load error."""
    files = spec_files(spec_dir)
    known = {str(p.resolve()): _display(spec_dir, p) for p in files}
    namespaces: list[LoadedNamespace] = []
    errors: list[SpecError] = []
    if not spec_dir.is_dir():
        return [], [SpecError(str(spec_dir), "spec directory not found")]
    if not files:
        return [], [SpecError(str(spec_dir), "no spec modules (*.py) in the spec directory")]
    for index, path in enumerate(files):
        shown = known[str(path.resolve())]
        module_name = f"omnihub_spec_{index}"
        spec = importlib.util.spec_from_file_location(module_name, path.resolve())
        if spec is None or spec.loader is None:  # pragma: no cover - only for odd paths
            errors.append(SpecError(f"{shown}:1", "cannot be imported"))
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            declared = [
                value
                for value in vars(module).values()
                if isinstance(value, FrameworkNamespace) and value.module == module_name
            ]
            for ns in sorted(declared, key=lambda n: n.line):
                builder = NamespaceBuilder(ns, known)
                try:
                    ns.build(builder)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # GeneratorExit etc. too: one line each
                    errors.append(
                        SpecError(_located(exc, known, f"{shown}:{ns.line}"), _describe(exc))
                    )
                    continue
                namespaces.append(
                    LoadedNamespace(
                        name=ns.name,
                        package=ns.package,
                        file=shown,
                        line=ns.line,
                        models=tuple(builder.models),
                    )
                )
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # any error of a spec: one line
            errors.append(SpecError(_located(exc, known, f"{shown}:1"), _describe(exc)))
        finally:
            sys.modules.pop(module_name, None)
    if not errors and not any(ns.models for ns in namespaces):
        what = "declare no models" if namespaces else "declare no @framework_namespace"
        errors.append(SpecError(str(spec_dir), f"the spec modules {what}; nothing to compile"))
    return namespaces, errors
