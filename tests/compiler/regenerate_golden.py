"""Regenerate the golden files after an intended change to the compiler's output.

    .venv/bin/python tests/compiler/regenerate_golden.py

Each generated file of ``fixtures/spec`` is stored as ``fixtures/golden/<path>.golden`` (the
suffix keeps mypy, pytest and importers away from the copies); the ``--docs`` catalogue page
of the fixture is ``fixtures/models.md.golden``. The same spec compiled with
``SHARDED_SIZE`` models per shard (the layout of large namespaces) is stored under
``fixtures/golden_sharded/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omnihub_compiler.compile import render_docs, render_outputs

HERE = Path(__file__).resolve().parent
SPEC = HERE / "fixtures" / "spec"
GOLDEN = HERE / "fixtures" / "golden"
GOLDEN_SHARDED = HERE / "fixtures" / "golden_sharded"
#: Shard size of the sharded golden tree: small enough that the fixture needs several shards.
SHARDED_SIZE = 2
DOCS_GOLDEN = HERE / "fixtures" / "models.md.golden"


def main() -> None:
    """Rewrite fixtures/golden, fixtures/golden_sharded and fixtures/models.md.golden."""
    for golden, shard_size in ((GOLDEN, None), (GOLDEN_SHARDED, SHARDED_SIZE)):
        shutil.rmtree(golden, ignore_errors=True)
        files, catalogs = render_outputs(SPEC, shard_size=shard_size)
        for rel, content in files.items():
            target = golden / f"{rel}.golden"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if shard_size is None:
            DOCS_GOLDEN.write_bytes(render_docs(catalogs))


if __name__ == "__main__":
    main()
