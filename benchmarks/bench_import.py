"""Target 2: ``import omnihub_generated.<ns>`` of a 10,000-model namespace.

ours: the import alone, timed with ``perf_counter`` inside a fresh interpreter, median over
many children; once from bytecode (``__pycache__`` written by a warm-up run) and once with
``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` for the generated package, so every
child compiles the source. baseline: the whole wall time of ``python -c pass`` (same
interpreter, same environment), median over as many children.
"""

from __future__ import annotations

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
    "import omnihub_generated.{package}\n"
    "print(time.perf_counter() - t, time.process_time() - c)\n"
)


def _bare_startup(env: dict[str, str]) -> float:
    return run_measured([sys.executable, "-c", "pass"], env, timeout=30).wall


def _timed_import(package_dir: Path, env: dict[str, str], bytecode: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of the import in a fresh interpreter."""
    if not bytecode:
        shutil.rmtree(package_dir / "__pycache__", ignore_errors=True)
    code = _TIMED_IMPORT.format(package=package_dir.name)
    wall, cpu = run_measured([sys.executable, "-c", code], env, timeout=60).stdout.split()
    return float(wall), float(cpu)


def _measure(
    package: Path | None, env: dict[str, str], repetitions: int, bytecode: bool
) -> tuple[float | None, float | None, float]:
    """Medians of (import wall, import CPU, bare startup), alternating so load hits all alike."""
    if package is not None and bytecode:  # warm-up: writes __pycache__
        _timed_import(package, env, bytecode=True)
    walls: list[float] = []
    cpus: list[float] = []
    bare: list[float] = []
    for _ in range(repetitions):
        bare.append(_bare_startup(env))
        if package is not None:
            wall, cpu = _timed_import(package, env, bytecode)
            walls.append(wall)
            cpus.append(cpu)
    if not walls:
        return None, None, median(bare)
    return median(walls), median(cpus), median(bare)


def _build(work: Path) -> Path:
    """Compile a one-namespace synthetic spec; return the generated package directory."""
    spec, out = work / "spec", work / "out"
    write_synthetic_spec(spec, N_MODELS, 1)
    run_measured([*compiler_command(), spec, "-o", out], timeout=120)
    packages = sorted(c.parent for c in (out / "omnihub_generated").glob("*/_catalog.json"))
    if len(packages) != 1:
        raise Unavailable(f"expected one generated namespace under {out}, found {packages}")
    return packages[0]


def run(quick: bool) -> list[Result]:
    """import_10k_bytecode and import_10k_source."""
    repetitions = {True: 9 if quick else 41, False: 5 if quick else 21}  # by bytecode
    work = scratch_dir("import-")
    try:
        package: Path | None = None
        note = ""
        try:
            package = _build(work)
        except (Unavailable, ChildFailed) as exc:
            note = f"ours: {exc}. "
        results = []
        for bytecode in (True, False):
            env = child_env()
            if package is not None:
                env["PYTHONPATH"] = str(package.parent.parent)
            if not bytecode:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            ours, cpu, baseline = _measure(package, env, repetitions[bytecode], bytecode)
            cpu_note = "" if cpu is None else f"CPU time {cpu * 1000:.1f}ms; "
            kind = "bytecode" if bytecode else "source"
            how = "from __pycache__" if bytecode else "PYTHONDONTWRITEBYTECODE=1, no __pycache__"
            results.append(
                Result(
                    f"import_10k_{kind}",
                    None if ours is None else ours * 1000,
                    baseline * 1000,
                    Target("ours", "<=", 30.0 if bytecode else 100.0, "ms"),
                    "ms",
                    note=f"{note}{cpu_note}{how}; median of {repetitions[bytecode]} fresh "
                    "interpreters; baseline: wall time of `python -c pass`",
                )
            )
        return results
    finally:
        remove(work)
