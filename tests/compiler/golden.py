"""Shared checks of the compiler tests: black-cleanliness and golden-tree comparison."""

from __future__ import annotations

from pathlib import Path

import black

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def black_formatted(path: str, text: str) -> str:
    """``text`` as black would format it (stub mode for ``.pyi``)."""
    return black.format_str(text, mode=black.Mode(is_pyi=path.endswith(".pyi")))


def assert_matches_golden(files: dict[str, bytes], golden_dir: Path) -> None:
    """``files`` (relative path -> content) equal the ``*.golden`` tree under ``golden_dir``.

    Regenerate the golden trees with: .venv/bin/python tests/compiler/regenerate_golden.py
    """
    golden = {
        p.relative_to(golden_dir).as_posix().removesuffix(".golden"): p.read_bytes()
        for p in golden_dir.rglob("*.golden")
    }
    assert set(golden) == set(files)
    for rel, content in files.items():
        assert golden[rel] == content, rel
