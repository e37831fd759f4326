"""Regenerate the golden files after an intended change to the compiler's output.

    .venv/bin/python tests/compiler/regenerate_golden.py

Each generated file of ``fixtures/spec`` is stored as ``fixtures/golden/<path>.golden`` (the
suffix keeps mypy, pytest and importers away from the copies); the ``--docs`` catalogue page
of the fixture is ``fixtures/models.md.golden``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omnihub_compiler.compile import render_docs, render_outputs

HERE = Path(__file__).resolve().parent
SPEC = HERE / "fixtures" / "spec"
GOLDEN = HERE / "fixtures" / "golden"
DOCS_GOLDEN = HERE / "fixtures" / "models.md.golden"


def main() -> None:
    """Rewrite fixtures/golden and fixtures/models.md.golden from fixtures/spec."""
    shutil.rmtree(GOLDEN, ignore_errors=True)
    files, catalogs = render_outputs(SPEC)
    for rel, content in files.items():
        target = GOLDEN / f"{rel}.golden"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    DOCS_GOLDEN.write_bytes(render_docs(catalogs))


if __name__ == "__main__":
    main()
