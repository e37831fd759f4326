"""The no-op fast path: skip a compile whose inputs and outputs are unchanged.

The stamp records a sha256 over everything the output depends on -- the compiler version,
every file under spec/ (modules, the lock file and any data file a spec reads; not
``__pycache__``), the ``--docs`` path, the compiler's own sources and the runtime's
sources (the catalogue schema and ``omnihub.loaders.result_type`` live there) -- and the
size and mtime of every file it wrote. When both still match, nothing is loaded, rendered
or written. It lives at
``<out>/omnihub_generated/__pycache__/omnihub-compile.stamp``: ignored by git like any
``__pycache__``, never packaged, and deleting it only costs one full compile.
``--check`` never trusts it. Limitation: a third-party loader registered through an entry
point can change result types without changing these inputs; run with ``--force`` then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

__all__ = ["input_key", "stamp_is_current", "stamp_path", "write_stamp"]


def stamp_path(out_dir: Path) -> Path:
    """Where the stamp of ``out_dir`` lives."""
    return out_dir / "omnihub_generated" / "__pycache__" / "omnihub-compile.stamp"


def _sources() -> list[Path]:
    import omnihub

    import omnihub_compiler

    roots = [Path(omnihub_compiler.__file__).parent, Path(str(omnihub.__file__)).parent]
    return [p for root in roots for p in sorted(root.rglob("*.py"))]


def _spec_inputs(spec_dir: Path) -> list[Path]:
    """Every file under ``spec_dir`` (a spec may read any of them, e.g. a JSON manifest),
    except bytecode caches, which importing the spec itself rewrites."""
    return sorted(p for p in spec_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def input_key(spec_dir: Path, extra: str = "") -> str:
    """sha256 over the compiler version, every file of spec/, the compiler and runtime
    sources, and ``extra`` (the options that change the output, e.g. the ``--docs`` path)."""
    from omnihub_compiler import __version__

    digest = hashlib.sha256(__version__.encode())
    digest.update(f"\0{extra}\0".encode())
    spec_files = _spec_inputs(spec_dir)
    for path in [*spec_files, *_sources()]:
        name = path.relative_to(spec_dir) if path in spec_files else path.name
        digest.update(f"\0{name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _stats(out_dir: Path, files: Iterable[str]) -> dict[str, list[int]]:
    result = {}
    for rel in sorted(files):
        st = (out_dir / rel).stat()
        result[rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return result


def stamp_is_current(out_dir: Path, key: str) -> bool:
    """Whether ``out_dir`` was written from inputs hashing to ``key`` and not touched since."""
    try:
        data = json.loads(stamp_path(out_dir).read_text(encoding="utf-8"))
        return bool(data["key"] == key and _stats(out_dir, data["files"]) == data["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_stamp(out_dir: Path, key: str, files: Iterable[str]) -> None:
    """Record ``key`` and the current state of ``files`` (best effort).

    ``files`` are relative to ``out_dir``; an absolute path (the ``--docs`` page) is kept as is.
    """
    path = stamp_path(out_dir)
    try:
        text = json.dumps({"key": key, "files": _stats(out_dir, files)})
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        from omnihub_compiler.atomic import replace_file

        replace_file(path, text.encode("utf-8"))
    except OSError:
        pass
