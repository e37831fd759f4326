"""Code the benchmarks run in fresh child processes; prints one JSON object on stdout.

Run as a script (``python benchmarks/child.py <command> ...``) so that it imports nothing of
the suite: the child sees omnihub exactly as a user's process does.

- ``fetch <entry-json> [--preimport]``: ``omnihub.hub.fetch`` of a raw entry, timed around
  the call. With ``--preimport`` the libraries a download uses (omnihub.hub, omnihub.download,
  omnihub.locking, requests) are imported first, timed separately ("imports").
- ``call <package> <function> <repetitions>``: call a generated function (a cache hit once
  primed) many times; report the median, the sockets opened (audit hook) and whether
  requests or tqdm were imported.
- ``ask <package> <function> [--gate READY_FD RELEASE_FD]``: import
  ``omnihub_generated.<package>`` and its ``<function>`` (what a caller has done before it
  asks for a model), then call it once. With ``--gate`` the child first writes one byte to
  READY_FD and blocks until RELEASE_FD reaches end-of-file (see ``benchmarks.procs.Gate``).
  Reports CLOCK_MONOTONIC timestamps ("imported", "woke", "finished"), comparable with the
  parent's, the CPU seconds used before and by the call, and the returned file's path.
"""

from __future__ import annotations

import sys
import time

_socket_events: list[str] = []


def _audit(event: str, _args: tuple[object, ...]) -> None:
    if event.startswith("socket."):
        _socket_events.append(event)


def _fetch(entry_json: str, preimport: bool = False) -> dict[str, object]:
    import json

    imports = 0.0
    if preimport:
        import importlib

        started = time.perf_counter()
        for module in (
            "omnihub.hub",
            "omnihub.download",
            "omnihub.locking",
            "requests",
        ):
            importlib.import_module(module)
        imports = time.perf_counter() - started

    from omnihub._enums import Format, Framework, ModelType
    from omnihub.catalog import ModelEntry

    data = json.loads(entry_json)
    data["framework"] = Framework(data["framework"])
    data["model_type"] = ModelType(data["model_type"])
    data["format"] = Format(data["format"])
    entry = ModelEntry(**data)
    started = time.perf_counter()
    from omnihub.hub import fetch

    path = fetch(entry)
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "imports": imports, "path": str(path), "vm_hwm": _vm_hwm()}


def _vm_hwm() -> int:
    """This process's peak RSS in bytes (VmHWM: its own address space, not inherited)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _call(package: str, function: str, repetitions: int) -> dict[str, object]:
    import importlib
    import os
    import statistics

    module = importlib.import_module(f"omnihub_generated.{package}")
    model = getattr(module, function)
    started = time.perf_counter()
    result = model()
    first = time.perf_counter() - started
    samples = []
    for _ in range(repetitions):
        started = time.perf_counter()
        model()
        samples.append(time.perf_counter() - started)
    path = getattr(result, "path", None)
    baseline = []
    if path is not None:
        # DL4J's cache hit: File.exists() on the cache path, then load.
        for _ in range(repetitions):
            started = time.perf_counter()
            os.path.exists(path)
            baseline.append(time.perf_counter() - started)
    return {
        "first": first,
        "median": statistics.median(samples),
        "baseline_median": statistics.median(baseline) if baseline else None,
        "result_type": f"{type(result).__module__}.{type(result).__qualname__}",
        "path": None if path is None else str(path),
        "sockets": len(_socket_events),
        "requests_imported": "requests" in sys.modules,
        "tqdm_imported": "tqdm" in sys.modules,
    }


def _loader(package: str, function: str, parser: str, repetitions: int) -> dict[str, object]:
    import importlib
    import statistics

    from omnihub._entry import entry_for
    from omnihub.hub import target_path

    model = getattr(importlib.import_module(f"omnihub_generated.{package}"), function)
    module, _, name = parser.partition(":")
    parse = getattr(importlib.import_module(module), name)
    entry = entry_for(package, function)
    path = target_path(entry)
    result = model()  # the first calls import what the loader needs
    parse(entry, path)
    ours, base = [], []
    for _ in range(repetitions):
        started = time.perf_counter()
        model()
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        parse(entry, path)
        base.append(time.perf_counter() - started)
    return {
        "median": statistics.median(ours),
        "baseline_median": statistics.median(base),
        "result_type": f"{type(result).__module__}.{type(result).__qualname__}",
        "size": path.stat().st_size,
        "sockets": len(_socket_events),
    }


def parse_ask(argv: list[str]) -> tuple[str, str, tuple[int, int] | None] | None:
    """``ask PACKAGE FUNCTION [--gate READY_FD RELEASE_FD]`` -> (package, function, gate)."""
    if argv[:1] != ["ask"] or len(argv) not in (3, 6):
        return None
    if len(argv) == 3:
        return argv[1], argv[2], None
    if argv[3] != "--gate" or not (argv[4].isdigit() and argv[5].isdigit()):
        return None
    return argv[1], argv[2], (int(argv[4]), int(argv[5]))


def wait_at_gate(ready_fd: int, release_fd: int) -> float:
    """Say ready (one byte), block until released (end-of-file); the monotonic wake time."""
    import contextlib
    import os

    # BrokenPipeError: the parent closed the gate before this child got ready (released too)
    with contextlib.suppress(BrokenPipeError):
        os.write(ready_fd, b".")
    os.close(ready_fd)
    while os.read(release_fd, 1):  # the parent never writes; release is end-of-file
        pass
    os.close(release_fd)
    return time.monotonic()


def _ask(package: str, function: str, gate: tuple[int, int] | None) -> dict[str, object]:
    import importlib

    module = importlib.import_module(f"omnihub_generated.{package}")
    model = getattr(module, function)
    imported = time.monotonic()
    cpu_before = time.process_time()
    woke = imported if gate is None else wait_at_gate(*gate)
    result = model()
    finished = time.monotonic()
    return {
        "cpu_before": cpu_before,
        "cpu_asking": time.process_time() - cpu_before,
        "imported": imported,
        "woke": woke,
        "finished": finished,
        "path": str(getattr(result, "path", result)),
    }


def main(argv: list[str]) -> int:
    """Dispatch one command and print its JSON result."""
    import json

    if argv[:1] == ["fetch"] and len(argv) in (2, 3) and argv[2:] in ([], ["--preimport"]):
        print(json.dumps(_fetch(argv[1], preimport=len(argv) == 3)))
        return 0
    if argv[:1] == ["call"] and len(argv) == 4:
        sys.addaudithook(_audit)
        print(json.dumps(_call(argv[1], argv[2], int(argv[3]))))
        return 0
    if argv[:1] == ["loader"] and len(argv) == 5:
        sys.addaudithook(_audit)
        print(json.dumps(_loader(argv[1], argv[2], argv[3], int(argv[4]))))
        return 0
    ask = parse_ask(argv)
    if ask is not None:
        print(json.dumps(_ask(*ask)))
        return 0
    usage = (
        "usage: child.py fetch ENTRY_JSON [--preimport] | call PACKAGE FUNCTION N"
        " | loader PACKAGE FUNCTION MODULE:PARSER N"
        " | ask PACKAGE FUNCTION [--gate READY_FD RELEASE_FD]"
    )
    print(f"{usage} (got {argv})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
