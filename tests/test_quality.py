"""The project's own code stays ruff- and mypy --strict-clean (the style bar, enforced in CI).

These run the real tools on the real tree, so a lint or typing regression fails the test
command rather than waiting for someone to run tox.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["runtime", "compiler", "tests", "benchmarks", "spec"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ruff_check_and_format_are_clean() -> None:
    check = _run("ruff", "check", *SOURCES)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _run("ruff", "format", "--check", *SOURCES)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict_on_our_code_tests_and_spec() -> None:
    result = _run("mypy", "--strict", "runtime/omnihub", "compiler/omnihub_compiler", *SOURCES[2:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
