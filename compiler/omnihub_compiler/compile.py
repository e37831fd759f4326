"""The compile pipeline as a library: spec/ (+ lock) -> validated catalogues -> generated files."""

from __future__ import annotations

from pathlib import Path

from omnihub.catalog import Catalog

from omnihub_compiler.errors import CompileError, SpecError
from omnihub_compiler.loader import load_spec
from omnihub_compiler.lock import LOCK_FILENAME, apply_lock, read_lock
from omnihub_compiler.stamp import input_key, stamp_is_current, write_stamp
from omnihub_compiler.validate import validate
from omnihub_compiler.writer import TreeDiff, diff_tree, write_file, write_tree

__all__ = [
    "build_catalogs",
    "check_runtime_api",
    "compile_spec",
    "lock_display",
    "render_docs",
    "render_outputs",
    "render_tree",
]


def lock_display(spec_dir: Path) -> str:
    """How errors name the lock file: ``spec/omnihub.lock``."""
    return f"{spec_dir.name or spec_dir.resolve().name}/{LOCK_FILENAME}"


def build_catalogs(spec_dir: Path, *, use_lock: bool = True) -> list[Catalog]:
    """Load and validate ``spec_dir`` (lock values filling gaps); raise :class:`CompileError`.

    Every problem -- in the spec, in the lock file, or between the two -- is reported at once.
    """
    namespaces, errors = load_spec(spec_dir)
    catalogs, problems = validate(namespaces)
    errors += problems
    seen: dict[str, str] = {}
    for ns in namespaces:
        first = seen.setdefault(ns.name, ns.location)
        if first != ns.location:
            message = f"namespace name {ns.name!r} is already declared at {first}"
            errors.append(SpecError(ns.location, message))
    if use_lock and spec_dir.is_dir():
        lock, lock_errors = read_lock(spec_dir / LOCK_FILENAME, lock_display(spec_dir))
        errors += lock_errors
        catalogs, conflicts = apply_lock(catalogs, lock)
        errors += conflicts
    if errors:
        raise CompileError(errors)
    return catalogs


def render_outputs(
    spec_dir: Path, *, shard_size: int | None = None, dist_name: str | None = None
) -> tuple[dict[str, bytes], list[Catalog]]:
    """Every file under the output directory for ``spec_dir``, and the catalogues.

    ``shard_size``: namespaces with more models are split into shard modules (default
    :data:`omnihub_compiler.emit.SHARD_SIZE`). ``dist_name``: the distribution name in
    ``pyproject.toml`` (default :data:`omnihub_compiler.distribution.DISTRIBUTION_NAME`).
    """
    from omnihub_compiler import __version__
    from omnihub_compiler.distribution import DISTRIBUTION_NAME, PYPROJECT, render_pyproject
    from omnihub_compiler.emit import SHARD_SIZE, emit_tree  # the stamp's no-op path skips it
    from omnihub_compiler.verify import import_problems

    catalogs = build_catalogs(spec_dir)
    check_runtime_api()
    files = emit_tree(catalogs, shard_size=SHARD_SIZE if shard_size is None else shard_size)
    name = DISTRIBUTION_NAME if dist_name is None else dist_name
    files[PYPROJECT] = render_pyproject(catalogs, __version__, name=name).encode()
    problems = import_problems(files)
    if problems:
        raise CompileError(problems)
    return files, catalogs


def check_runtime_api() -> None:
    """Refuse to emit code the installed runtime could not import (a CompileError)."""
    from omnihub import __version__ as runtime_version
    from omnihub.generated_api import SUPPORTED_API_VERSIONS

    from omnihub_compiler.emit import GENERATED_API

    if GENERATED_API not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        raise CompileError(
            [
                f"omnihub-compile emits generated-code API {GENERATED_API}, but the installed"
                f" omnihub {runtime_version} provides API {supported}; install a matching omnihub"
            ]
        )


def render_tree(
    spec_dir: Path, *, shard_size: int | None = None, dist_name: str | None = None
) -> dict[str, bytes]:
    """Every generated file for ``spec_dir``, as ``{path relative to the output: content}``."""
    return render_outputs(spec_dir, shard_size=shard_size, dist_name=dist_name)[0]


def render_docs(catalogs: list[Catalog]) -> bytes:
    """The catalogue page (``--docs``) for ``catalogs``."""
    from omnihub_compiler.docs import render_models_page

    return render_models_page(catalogs).encode()


def _docs_differs(docs: Path, content: bytes) -> bool:
    try:
        return docs.read_bytes() != content
    except OSError:
        return True


def compile_spec(
    spec_dir: Path,
    out_dir: Path,
    *,
    check: bool = False,
    force: bool = False,
    docs: Path | None = None,
    shard_size: int | None = None,
    dist_name: str | None = None,
) -> TreeDiff:
    """Compile ``spec_dir`` into ``out_dir`` (or, with ``check``, only report differences).

    ``docs``: also write (or, with ``check``, compare) the catalogue page there; it is
    reported in the diff under the path as given. Unless ``check`` or ``force``, a compile
    whose inputs and outputs are unchanged since the last one (:mod:`omnihub_compiler.stamp`)
    returns at once, writing nothing. Nothing is written when the spec or lock has errors.
    ``shard_size``, ``dist_name``: see :func:`render_outputs`.
    """
    if check:
        files, catalogs = render_outputs(spec_dir, shard_size=shard_size, dist_name=dist_name)
        diff = diff_tree(out_dir, files)
        if docs is not None and _docs_differs(docs, render_docs(catalogs)):
            diff = TreeDiff((*diff.changed, str(docs)), diff.removed)
        return diff
    extra = str(docs.resolve()) if docs is not None else ""
    options = extra if shard_size is None else f"{extra}\0shard_size={shard_size}"
    if dist_name is not None:
        options += f"\0dist_name={dist_name}"
    key = input_key(spec_dir, options) if spec_dir.is_dir() else ""
    if key and not force and stamp_is_current(out_dir, key):
        return TreeDiff((), ())
    files, catalogs = render_outputs(spec_dir, shard_size=shard_size, dist_name=dist_name)
    page = render_docs(catalogs) if docs is not None else b""
    diff = write_tree(out_dir, files)
    if docs is not None and write_file(docs, page):
        diff = TreeDiff((*diff.changed, str(docs)), diff.removed)
    write_stamp(out_dir, key, [*files, *([extra] if extra else [])])
    return diff
