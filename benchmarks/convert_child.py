"""What the conversion benchmarks run in fresh child processes; prints one JSON object.

Run as a script (``python benchmarks/convert_child.py <command> ...``) so the child imports
nothing of the suite.

- ``convert PATH ROUNDS``: load the model file once cold and convert it (``to_onnx()``,
  imports included: "first"), then ROUNDS times: load it afresh (the baseline: what reading
  the file costs) and convert that fresh object (ours), interleaved.
- ``output PATH ROUNDS CALLS BATCH``: convert, then time ``output()`` on a random batch against
  onnxruntime called directly on an ``InferenceSession`` built from the same ONNX bytes;
  each round alternates up to CALLS calls of each (fewer for slow models: about 0.25 s a
  side, at least 30; who goes first alternates too) and keeps the median call of each.
- ``rss PATH``: load, reset the peak RSS (``/proc/self/clear_refs``), convert; report the
  peak RSS during the conversion, the RSS before it and the parameter bytes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any


def _load(path: str) -> Any:
    """The loaded model: a SameDiffGraph for ``.fb``, else a DL4J network."""
    from pathlib import Path

    if path.endswith(".fb"):
        from omnihub.loaders.samediff import read_flatgraph

        return read_flatgraph(Path(path))
    from omnihub.loaders.dl4j import read_model_serializer

    return read_model_serializer(Path(path))


def _convert(path: str, rounds: int) -> dict[str, object]:
    started = time.perf_counter()
    model = _load(path)
    loaded = time.perf_counter()
    proto = model.to_onnx()
    first = time.perf_counter() - loaded
    cold_load = loaded - started
    loads, converts = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fresh = _load(path)
        t1 = time.perf_counter()
        fresh.to_onnx()
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        converts.append(t2 - t1)
    return {
        "first": first,
        "cold_load": cold_load,
        "loads": loads,
        "converts": converts,
        "nodes": len(proto.graph.node),
        "initializers": len(proto.graph.initializer),
        "kind": type(model).__name__,
    }


def _feeds(proto: Any, batch: int) -> dict[str, Any]:
    """A random input per graph input: the batch dimension ``batch``, other dims as declared."""
    import numpy as np
    from onnx import helper

    initializers = {init.name for init in proto.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in tensor.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        feeds[value.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def _ours(model: Any, feeds: dict[str, Any]) -> Any:
    kind = type(model).__name__
    if kind == "SameDiffGraph":
        return lambda: model.output(feeds)
    values = list(feeds.values())
    if kind == "ComputationGraph":
        return lambda: model.output(*values)
    return lambda: model.output(values[0])


def _output(path: str, rounds: int, calls: int, batch: int) -> dict[str, object]:
    import onnxruntime

    model = _load(path)
    data = model.to_onnx().SerializeToString()
    import onnx

    proto = onnx.load_from_string(data)
    feeds = _feeds(proto, batch)
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])

    def direct() -> Any:
        return session.run(None, feeds)

    ours = _ours(model, feeds)
    ours()  # builds and caches the wrapper's session
    warm = []
    for _ in range(5):
        started = time.perf_counter()
        direct()
        warm.append(time.perf_counter() - started)
    # at most CALLS calls, fewer for slow models: about 0.25 s per side and round, at least 30
    calls = max(30, min(calls, int(0.25 / max(statistics.median(warm), 1e-6))))
    ours_times: list[float] = []
    direct_times: list[float] = []
    clock = time.perf_counter
    for number in range(rounds):
        # call by call, alternating who goes first: neighbours share the machine's load
        ours_calls: list[float] = []
        direct_calls: list[float] = []
        for call in range(calls):
            pair = [(ours, ours_calls), (direct, direct_calls)]
            for fn, times in pair if (number + call) % 2 == 0 else reversed(pair):
                started = clock()
                fn()
                times.append(clock() - started)
        ours_times.append(statistics.median(ours_calls))
        direct_times.append(statistics.median(direct_calls))
    return {
        "ours": ours_times,
        "direct": direct_times,
        "inputs": {name: list(value.shape) for name, value in feeds.items()},
        "kind": type(model).__name__,
        "nodes": len(proto.graph.node),
        "calls": calls,
    }


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _rss(path: str) -> dict[str, object]:
    import numpy  # noqa: F401 -- resident before the measurement, like the model
    import onnx  # noqa: F401

    model = _load(path)
    params = getattr(model, "params", None)
    param_bytes = int(params.nbytes) if params is not None else 0
    load_peak = _status("VmHWM")
    before = _status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    proto = model.to_onnx()
    elapsed = time.perf_counter() - started
    return {
        "peak": _status("VmHWM"),
        "before": before,
        "load_peak": load_peak,
        "param_bytes": param_bytes,
        "reset": reset,
        "seconds": elapsed,
        "initializer_bytes": sum(len(i.raw_data) for i in proto.graph.initializer),
    }


def main(argv: list[str]) -> int:
    """Dispatch one command; print its JSON result."""
    command, path, *rest = argv
    if command == "convert":
        result = _convert(path, int(rest[0]))
    elif command == "output":
        result = _output(path, int(rest[0]), int(rest[1]), int(rest[2]))
    elif command == "rss":
        result = _rss(path)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
