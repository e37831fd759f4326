"""A user's code is type-checked against omnihub under every install mode (issue 14, item 11).

The README installs with ``pip install -e .``; a release installs wheels. In both, mypy on a
user's file must see ``omnihub`` and the generated functions' real return types: assigning
``resnet18()`` to an ``int`` is an error that names ``SameDiffGraph`` (were the packages
invisible, mypy would report them missing, or type the call as ``Any`` and say nothing).

Each case installs into a fresh virtualenv, offline (``--no-index --no-build-isolation``,
with the build backends this environment already has). The new venv reaches the installed
dependencies (attrs, numpy...) through a ``.pth`` naming this environment's site-packages, so
nothing is downloaded; omnihub itself comes only from the install under test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

USER_CODE = """\
from omnihub.loaders.samediff import SameDiffGraph
from omnihub_generated.samediff import resnet18

graph: SameDiffGraph = resnet18(force_download=False)
wrong: int = resnet18()
"""


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(a) for a in args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        **kwargs,
    )


def _venv(path: Path) -> Path:
    """A new venv without pip whose dependencies are this environment's; returns its python."""
    done = _run(sys.executable, "-m", "venv", "--without-pip", path)
    assert done.returncode == 0, done.stderr
    python = path / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(purelib.stdout.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _pip_install(python: Path, *targets: str | Path) -> None:
    done = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        *targets,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _where(python: Path, module: str) -> Path:
    done = _run(python, "-c", f"import {module}; print({module}.__file__)", cwd=REPO.parent)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def _mypy_errors(python: Path, workdir: Path, env: dict[str, str]) -> list[str]:
    """mypy --strict on the user's file, resolving imports as ``python`` does."""
    (workdir / "user.py").write_text(USER_CODE)
    done = _run(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-incremental",
        "--python-executable",
        python,
        "user.py",
        cwd=workdir,
        env=env,
    )
    return [line for line in done.stdout.splitlines() if ": error:" in line] or [done.stdout]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return {**env, **extra}


def _assert_only_the_int_is_wrong(errors: list[str]) -> None:
    assert len(errors) == 1, errors
    assert errors[0].startswith("user.py:5: error: Incompatible types in assignment"), errors
    assert '"SameDiffGraph"' in errors[0]


@pytest.mark.slow
def test_the_readme_editable_install_is_typed(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip_install(python, "-e", REPO)
    # plain paths: a static .pth naming the source roots, no import hook
    assert _where(python, "omnihub") == REPO / "runtime" / "omnihub" / "__init__.py"
    site = Path(_run(python, "-c", "import site; print(site.getsitepackages()[0])").stdout.strip())
    assert not list(site.glob("__editable__*finder*.py"))
    # the committed zoo is used from generated/, as the README's quick start does
    errors = _mypy_errors(python, tmp_path, _clean_env(PYTHONPATH=str(REPO / "generated")))
    _assert_only_the_int_is_wrong(errors)


@pytest.mark.slow
def test_a_wheel_install_is_typed(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    generated = tmp_path / "generated"  # setuptools builds in the source tree: use a copy
    shutil.copytree(
        REPO / "generated", generated, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    for source in (REPO, generated):
        built = _run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            dist,
            source,
        )
        assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["omnihub", "omnihub_generated"]
    python = _venv(tmp_path / "venv")
    _pip_install(python, *wheels)
    assert _where(python, "omnihub").is_relative_to(tmp_path / "venv")
    _assert_only_the_int_is_wrong(_mypy_errors(python, tmp_path, _clean_env()))


def _shell_blocks(markdown: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL)]


def test_the_readme_install_is_a_plain_editable_install_and_ci_runs_its_test_command() -> None:
    """What the tests above install is what the README says, and .ci/run runs its test line."""
    blocks = _shell_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert blocks[0] == "pip install -e '.[loaders,compiler]'"  # one plain line, then...
    assert all("&&" not in b for b in blocks[1:5])  # ...the quick start in separate commands
    (test_command,) = [b for b in blocks if "pytest" in b]
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    venv, rest = test_command.split(" && ", 1)
    assert venv == "python3 -m venv .venv"
    assert "python3 -m venv .venv" in ci_lines
    assert ci_lines[-1] == rest  # the last step, so pytest's summary closes the run
