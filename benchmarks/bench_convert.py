"""Issue 13's targets: converting DL4J/SameDiff models to ONNX, and running them.

- ``convert_largest_shared``: ``to_onnx()`` of every model file in ../shared/data (a fresh
  child, imports warmed by one conversion, then interleaved rounds); ours is the median of the
  largest file, which must convert; the others are in the notes. baseline: loading the same
  file (the loader alone), in the same rounds.
- ``convert_50_layers``: the same for a synthetic 50-layer MultiLayerNetwork, 64 wide: Dense
  (six activations in turn), BatchNormalization, Activation and Dropout layers in turn, then a
  softmax Output.
- ``output_vs_onnxruntime``: ``output()`` per call vs ``InferenceSession.run`` built from the
  same ONNX bytes, alternating, on the largest shared model's ONNX input with a batch of 32.
- ``convert_peak_rss``: peak RSS of a child converting a ~100 MB synthetic network, from the
  loaded model on (``/proc/self/clear_refs`` resets the high-water mark after the load);
  target 2x the parameter bytes + 100 MiB; baseline: the child's RSS just before converting.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.convert_models import shared_models, synthetic_deep, synthetic_large
from benchmarks.harness import Result, Target, median
from benchmarks.procs import ChildFailed, run_measured
from benchmarks.workload import REPO, child_env

__all__ = ["run"]

_CHILD = REPO / "benchmarks" / "convert_child.py"
_MiB = 1 << 20
_MS = 1000.0

#: Models that need a converter the user registers (docs/inference.md, "Custom layers").
_CUSTOM = ("CustomLayerExample",)


def _child(*args: str | int | Path, timeout: float = 600) -> dict[str, object]:
    cmd = [sys.executable, str(_CHILD), *(str(a) for a in args)]
    done = run_measured(cmd, child_env(), timeout=timeout, cwd=REPO)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _floats(value: object) -> list[float]:
    assert isinstance(value, list)
    return [float(v) for v in value]


def _spread(samples: Sequence[float], scale: float = _MS, unit: str = "ms") -> str:
    return f"{min(samples) * scale:.1f}-{max(samples) * scale:.1f} {unit}"


def _failed(name: str, target: Target, unit: str, problem: str) -> Result:
    return Result(name, None, None, target, unit, note=problem)


def _conversion(name: str, path: Path, rounds: int, target: Target) -> Result:
    """Median ``to_onnx()`` and median load of ``path`` over ``rounds`` interleaved rounds."""
    try:
        data = _child("convert", path, rounds)
    except ChildFailed as exc:
        return _failed(name, target, "ms", f"{path.name} did not convert: {exc}")
    converts, loads = _floats(data["converts"]), _floats(data["loads"])
    note = (
        f"{path.name} ({data['kind']}, {path.stat().st_size} bytes): {data['nodes']} ONNX nodes,"
        f" {data['initializers']} initializers; to_onnx() median of {rounds} rounds, spread"
        f" {_spread(converts)}; first conversion in the process (imports onnx)"
        f" {float(str(data['first'])) * _MS:.0f} ms; baseline = loading the file, spread"
        f" {_spread(loads)}"
    )
    return Result(name, median(converts) * _MS, median(loads) * _MS, target, "ms", note=note)


def _runnable_shared() -> tuple[list[Path], str]:
    """The shared model files the benchmarks run (largest first), and those they leave out."""
    models = shared_models()
    skipped = ", ".join(p.name for p in models if p.name.startswith(_CUSTOM))
    note = f"Not run (they need a user-registered converter): {skipped}" if skipped else ""
    return [p for p in models if not p.name.startswith(_CUSTOM)], note


def _reason(exc: ChildFailed) -> str:
    return str(exc).strip().splitlines()[-1][-160:]


def _largest_shared(rounds: int) -> Result:
    target = Target("ours", "<=", 50, "ms")
    models, skipped = _runnable_shared()
    if not models:
        return _failed("convert_largest_shared", target, "ms", "no ../shared/data models")
    largest = _conversion("convert_largest_shared", models[0], rounds, target)
    others = []
    for path in models[1:]:
        try:
            data = _child("convert", path, max(3, rounds // 2))
        except ChildFailed as exc:
            others.append(f"{path.name}: FAILED ({_reason(exc)})")
            continue
        others.append(f"{path.name} {median(_floats(data['converts'])) * _MS:.1f} ms")
    note = f"{largest.note}. Other shared models: {'; '.join(others)}. {skipped}"
    return Result(
        largest.name, largest.ours, largest.baseline, largest.target, largest.unit, note=note
    )


def _output_ratio(rounds: int, calls: int) -> Result:
    """``output()`` vs onnxruntime on the largest shared model; every other one in the notes."""
    target = Target("ratio", "<=", 1.2)
    name = "output_vs_onnxruntime"
    models, skipped = _runnable_shared()
    measured: list[tuple[Path, list[float], list[float], dict[str, object]]] = []
    lines = []
    for path in models:
        try:
            data = _child("output", path, rounds, calls, 32)
        except ChildFailed as exc:
            lines.append(f"{path.name}: FAILED ({_reason(exc)})")
            continue
        ours, direct = _floats(data["ours"]), _floats(data["direct"])
        measured.append((path, ours, direct, data))
        lines.append(
            f"{path.name} {median(ours) * 1e6:.1f} vs {median(direct) * 1e6:.1f} us"
            f" ({median(ours) / median(direct):.2f}x)"
        )
    how = (
        f"median of {rounds} rounds, each the median of up to {calls} calls (about 0.25 s a"
        f" side, at least 30) alternating call by call with InferenceSession.run on the same"
        f" bytes; batch 32 where the batch is free"
    )
    if not measured or measured[0][0] != models[0]:
        problem = f"the largest shared model, {models[0].name if models else 'none'}, did not run"
        return _failed(name, target, "ms", f"{problem}. {how}. All: {'; '.join(lines)}")
    path, ours, direct, data = measured[0]
    ratios = [o / d for o, d in zip(ours, direct, strict=True)]
    note = (
        f"{path.name} ({data['kind']}, {data['nodes']} nodes), inputs {data['inputs']},"
        f" {data['calls']} calls a round: {how};"
        f" ours spread {_spread(ours, 1e6, 'us')}, direct {_spread(direct, 1e6, 'us')};"
        f" per-round ratio {min(ratios):.2f}-{max(ratios):.2f}. Every shared model (ours vs"
        f" direct per call): {'; '.join(lines)}. {skipped}"
    )
    return Result(name, median(ours) * _MS, median(direct) * _MS, target, "ms", note=note)


def _peak_rss(megabytes: int) -> Result:
    name = "convert_peak_rss"
    path, param_bytes = synthetic_large(megabytes)
    bound = (2 * param_bytes + 100 * _MiB) / _MiB
    target = Target("ours", "<=", round(bound), "MiB")
    try:
        data = _child("rss", path)
    except ChildFailed as exc:
        return _failed(name, target, "MiB", f"{path.name} did not convert: {exc}")
    peak, before = int(str(data["peak"])), int(str(data["before"]))
    note = (
        f"{path.name}: {param_bytes / 1e6:.0f} MB of FLOAT parameters"
        f" ({int(str(data['initializer_bytes'])) / 1e6:.0f} MB in the ONNX initializers);"
        f" converted in {float(str(data['seconds'])):.2f} s; peak while loading (before the"
        f" reset, not counted) {int(str(data['load_peak'])) / _MiB:.0f} MiB; target = 2 x"
        f" params + 100 MiB; baseline = RSS with the model loaded, just before to_onnx()"
    )
    checks = {"peak reset after load": bool(data["reset"])}
    return Result(name, peak / _MiB, before / _MiB, target, "MiB", checks=checks, note=note)


def run(quick: bool) -> list[Result]:
    """The four conversion benchmarks (fewer rounds in quick mode)."""
    rounds = 5 if quick else 9
    deep, _ = synthetic_deep()
    return [
        _largest_shared(rounds),
        _conversion("convert_50_layers", deep, rounds, Target("ours", "<=", 200, "ms")),
        _output_ratio(rounds, 100 if quick else 300),
        _peak_rss(100),
    ]
