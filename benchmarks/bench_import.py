"""Target 2: ``import omnihub_generated.<ns>`` of a 10,000-model namespace.

ours: ``from omnihub_generated.<ns> import <function>`` -- the import plus getting one
function, as a user does, so a namespace that defers its functions (PEP 562) pays for that
here -- timed with ``perf_counter`` inside a fresh interpreter, median over many children
(the bare ``import`` is in the notes). Once from bytecode (``__pycache__`` written by a
warm-up run), once with ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` for the
generated package, so every child compiles the source. baseline: the whole wall time of
``python -c pass`` (same interpreter, same environment), median over as many children.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from benchmarks.harness import Result, Target, median
from benchmarks.procs import ChildFailed, run_measured
from benchmarks.workload import (
    Unavailable,
    child_env,
    compiler_command,
    remove,
    scratch_dir,
    write_synthetic_spec,
)

__all__ = ["run"]

N_MODELS = 10_000

_TIMED_IMPORT = (
    "import time\n"
    "t, c = time.perf_counter(), time.process_time()\n"
    "import omnihub_generated.{package} as namespace\n"
    "imported = time.perf_counter()\n"
    "function = namespace.{function}\n"
    "print(time.perf_counter() - t, time.process_time() - c, imported - t)\n"
    "assert callable(function) and function.__doc__, function\n"
)


def _bare_startup(env: dict[str, str]) -> float:
    return run_measured([sys.executable, "-c", "pass"], env, timeout=30).wall


def _timed_import(
    target: tuple[Path, str], env: dict[str, str], bytecode: bool
) -> tuple[float, float, float]:
    """(wall, CPU, wall of the bare import) seconds in a fresh interpreter."""
    package_dir, function = target
    if not bytecode:
        shutil.rmtree(package_dir / "__pycache__", ignore_errors=True)
    code = _TIMED_IMPORT.format(package=package_dir.name, function=function)
    wall, cpu, bare = run_measured([sys.executable, "-c", code], env, timeout=60).stdout.split()
    return float(wall), float(cpu), float(bare)


def _measure(
    target: tuple[Path, str] | None, env: dict[str, str], repetitions: int, bytecode: bool
) -> tuple[tuple[float, float, float] | None, float]:
    """Medians of (wall, CPU, bare import) and of bare startup, alternating so load hits all."""
    if target is not None and bytecode:  # warm-up: writes __pycache__
        _timed_import(target, env, bytecode=True)
    samples: list[tuple[float, float, float]] = []
    startup: list[float] = []
    for _ in range(repetitions):
        startup.append(_bare_startup(env))
        if target is not None:
            samples.append(_timed_import(target, env, bytecode))
    if not samples:
        return None, median(startup)
    walls, cpus, bares = zip(*samples, strict=True)
    return (median(walls), median(cpus), median(bares)), median(startup)


def _build(work: Path) -> tuple[Path, str]:
    """Compile a one-namespace synthetic spec; return its package directory and last function."""
    spec, out = work / "spec", work / "out"
    write_synthetic_spec(spec, N_MODELS, 1)
    run_measured([*compiler_command(), spec, "-o", out], timeout=120)
    packages = sorted(c.parent for c in (out / "omnihub_generated").glob("*/_catalog.json"))
    if len(packages) != 1:
        raise Unavailable(f"expected one generated namespace under {out}, found {packages}")
    catalog = json.loads((packages[0] / "_catalog.json").read_text(encoding="utf-8"))
    return packages[0], max(str(m["python_name"]) for m in catalog["models"])


def run(quick: bool) -> list[Result]:
    """import_10k_bytecode and import_10k_source."""
    repetitions = {True: 9 if quick else 41, False: 5 if quick else 21}  # by bytecode
    work = scratch_dir("import-")
    try:
        target: tuple[Path, str] | None = None
        note = ""
        try:
            target = _build(work)
        except (Unavailable, ChildFailed) as exc:
            note = f"ours: {exc}. "
        results = []
        for bytecode in (True, False):
            env = child_env()
            if target is not None:
                env["PYTHONPATH"] = str(target[0].parent.parent)
            if not bytecode:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            measured, baseline = _measure(target, env, repetitions[bytecode], bytecode)
            ours = None if measured is None else measured[0]
            detail = ""
            if measured is not None and target is not None:
                detail = (
                    f"from ..{target[0].name} import {target[1]}; bare import "
                    f"{measured[2] * 1000:.1f}ms; CPU time {measured[1] * 1000:.1f}ms; "
                )
            kind = "bytecode" if bytecode else "source"
            how = "from __pycache__" if bytecode else "PYTHONDONTWRITEBYTECODE=1, no __pycache__"
            results.append(
                Result(
                    f"import_10k_{kind}",
                    None if ours is None else ours * 1000,
                    baseline * 1000,
                    Target("ours", "<=", 30.0 if bytecode else 100.0, "ms"),
                    "ms",
                    note=f"{note}{detail}{how}; median of {repetitions[bytecode]} fresh "
                    "interpreters; baseline: wall time of `python -c pass`",
                )
            )
        return results
    finally:
        remove(work)
