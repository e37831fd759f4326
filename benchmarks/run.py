"""Run omnihub's benchmark suite and rewrite docs/benchmarks.md.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py           # full mode (several minutes)
    .venv/bin/python benchmarks/run.py --quick   # smaller files, no 100k compile (< 1 min)
    .venv/bin/python benchmarks/run.py --only convert   # issue 13's group, its own section

Each benchmark prints ``<name>: ours=<x> baseline=<y> ratio=<r> target=<t> PASS|FAIL`` on
stdout (progress goes to stderr). The exit status is 0 when every line PASSes, else 1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_cache, bench_compile, bench_convert, bench_import
from benchmarks.harness import DESIGN_HEADING, Result, Target, format_line, render_section
from benchmarks.harness import update_report as merge_report
from benchmarks.servers import Nginx, ToolError, ensure_tools
from benchmarks.workload import REPO, remove, scratch_dir

__all__ = ["machine_info", "main"]

GROUPS = ("compile", "import", "convert", "cache")
_NETWORK_GROUPS = {"cache"}
_TOOLS = ("nginx", "curl")

_WHAT = (
    (
        "compile_10k_cold / compile_100k_cold",
        "`omnihub-compile spec -o out` in a fresh process into an empty directory; synthetic spec, "
        "10 namespaces",
        "`black.format_str` over the same generated `.py`/`.pyi`",
    ),
    (
        "compile_10k_noop",
        "the same command again; must touch no file (mtime, size, inode)",
        "the cold compile",
    ),
    (
        "import_10k_bytecode / import_10k_source",
        "`from omnihub_generated.<ns> import <fn>` (10,000 models; the bare import is in the "
        "notes), timed inside fresh interpreters, median",
        "`python -c pass` wall time",
    ),
    (
        "convert_largest_shared / convert_50_layers",
        "`to_onnx()` of the largest model file in ../shared/data (every other one in the notes) "
        "and of a synthetic 50-layer MultiLayerNetwork (Dense, BatchNormalization, Activation, "
        "Dropout in turn), in a child, after one warm-up "
        "conversion, median of interleaved rounds",
        "loading the same file (the loader alone), in the same rounds",
    ),
    (
        "output_vs_onnxruntime",
        "`output()` per call (batch 32) on the largest shared model that runs",
        "`onnxruntime.InferenceSession.run` on the same ONNX bytes, alternating",
    ),
    (
        "convert_peak_rss",
        "peak RSS of a child converting a ~100 MB synthetic network (high-water mark reset "
        "after loading); target 2x params + 100 MiB",
        "the child's RSS with the model loaded, just before `to_onnx()`",
    ),
    (
        "cache_hit_call",
        "a generated function's cache-hit call, median in a fresh process; zero sockets, "
        "requests/tqdm not imported",
        "`os.path.exists` on the cache path (DL4J)",
    ),
    (
        "loader_hit_samediff / loader_hit_dl4j",
        "a generated function's call with its model cached (hit test, loader), for the largest "
        "SameDiff and DL4J model of ../shared/data, median in a fresh process",
        "the loader's own parse of the cached file, alternating call by call",
    ),
)

PREAMBLE_TEMPLATE = """\
# Benchmarks

The performance targets of issues 5 (downloads, compile, import) and 13 (running models:
conversion to ONNX, `output()`), measured by `benchmarks/` against baselines measured in the
same run. Run from the repository root:

```
.venv/bin/python benchmarks/run.py --quick   # under a minute: smaller files, no 100k compile
.venv/bin/python benchmarks/run.py           # full mode: 1 GiB downloads, 100,000-model compile
.venv/bin/python benchmarks/run.py --only convert   # conversion and inference alone (issue 13)
```

Each benchmark prints `<name>: ours=<x> baseline=<y> ratio=<r> target=<t> PASS|FAIL`, where
ratio = ours / baseline and the target applies to ours (absolute) or to the ratio. The suite
rewrites the section of its mode below (the other sections and the design choices are kept;
`--only convert` has a section of its own, the other `--only` runs write nothing). nginx, curl
and aria2c are installed from Debian's packages when missing; nginx runs privately on 127.0.0.1
(config, logs and pid in a temporary directory) and is stopped at the end.
Everything the suite writes goes to `benchmarks/_work/` (gitignored).

{table}
"""
PREAMBLE = PREAMBLE_TEMPLATE.format(
    table="\n".join(
        [
            "| benchmark | what is measured (ours) | baseline |",
            "|---|---|---|",
            *(f"| {name} | {what} | {base} |" for name, what, base in _WHAT),
        ]
    )
)

DESIGN = f"""\
{DESIGN_HEADING}

How the numbers are obtained (the harness), then what the compiler and runtime do to meet
the targets. Owners of those parts extend their subsections; the suite keeps this section.

### Harness
- **Fresh processes.** Everything of ours runs in a new interpreter (`benchmarks/child.py` or
  the console script), so imports, caches and memory are what a user gets. Times are taken
  inside the child around the measured call where interpreter start would blur the figure
  (imports, cache hits, downloads) and as process wall time where the user waits for the whole
  process (compiles, the 16-process storm).
- **Baselines in the same run**, on the same disk, same server, same interpreter; download
  runs alternate who goes first and `sync` before each, so neither pays for the other's
  dirty pages.
- **Peak RSS is VmHWM, not `ru_maxrss`**: Linux carries a parent's high-water mark into its
  children across fork and exec, so every child of the (large) suite would report at least
  the suite's own RSS. The fetching child reports its own `VmHWM` from `/proc/self/status`
  and the parent samples it (and curl's) every 10 ms.
- **Bytecode or not is explicit**: this machine's environment sets
  `PYTHONDONTWRITEBYTECODE=1`; the children get it removed, and only the source-import run
  sets it again (and deletes the generated package's `__pycache__` before each child).
- **What the download baselines do not do**: curl neither hashes nor fsyncs; ours must do
  both (and the `import requests` inside `fetch`) within its measured time. aria2c is given
  `--checksum=sha-256=...` so it verifies like ours.
- **Noise**: the machine is shared (2 cores); each section records the load average at start
  and end. Baselines and ours alternate within a benchmark, so load hits both alike; imports
  also report the child's CPU time, which load does not inflate.
- **No-op means no input changed**: the compiler's stamp covers its own and the runtime's
  sources, which others edit while the suite runs; when they changed during the no-op
  measurement it is retried (at most 3 attempts, said in the notes) -- a write with unchanged
  inputs always FAILs.
- **Realistic namespaces**: the cache hit is measured on the last of 10,000 models (1,000
  quick) in its namespace, so per-call catalogue scans or a slow first-call catalogue parse
  show up (the first call is reported in the notes).
- **Zero sockets** is checked with an audit hook (`sys.addaudithook`) counting `socket.*`
  events in the calling process, and by nginx's access log not growing.
- **One download** is checked from nginx's access log: the body bytes sent for the file over
  all requests (ranged or not) must be at least its size and at most 16 MiB more -- the
  socket buffers of a full-body response abandoned for ranges, never a second copy.
- **Private nginx**: `daemon off; master_process off;`, config, pid, logs and temp paths in a
  temporary directory, a free port on 127.0.0.1; `/full/` unlimited, `/limited/` with
  `limit_rate 20m`. Test files are random (incompressible) and reused between runs.

### Compiler
(to be written by the compiler's owners: how the cold compile and the no-op recompile meet
their targets.)

### Runtime
(to be written by the runtime's owners: streaming and hashing, parallel ranges, locking, the
cheap cache-hit path.)
"""


def _version(cmd: Sequence[str]) -> str:
    """The first line of ``cmd``'s output up to any parenthesis: ``curl 7.88.1``."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0].split("(")[0].strip() if text else "unknown"


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info() -> dict[str, str]:
    """nproc, CPU model, memory, OS, Python, tool versions and the date, for the report."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with open("/proc/meminfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
                break
    return {
        "date (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "load average at start (1/5/15 min)": _load(),
        "CPU": cpu,
        "memory": memory,
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "nginx": _version(["/usr/sbin/nginx", "-v"]),
        "curl": _version(["curl", "--version"]),
        "aria2c": _version(["aria2c", "--version"]),
    }


def _guarded(group: str, fn: Callable[[], list[Result]]) -> list[Result]:
    """Run one group; a harness bug becomes a FAIL line instead of ending the suite."""
    try:
        return fn()
    except Exception as exc:
        traceback.print_exc()
        return [
            Result(
                group,
                None,
                None,
                Target("ours", "<=", 0.0),
                "",
                note=f"harness error: {type(exc).__name__}: {exc}",
            )
        ]


def _emit(results: list[Result], lines: list[str]) -> None:
    for result in results:
        line = format_line(result)
        print(line, flush=True)
        lines.append(line)
        failed = ", ".join(result.failed_checks)
        shown = f"failed checks: {failed}. {result.note}" if failed else result.note
        print(f"    {shown}", file=sys.stderr, flush=True)


def run_suite(quick: bool, groups: Sequence[str], lines: list[str]) -> list[Result]:
    """Run the selected groups in order, printing each line as soon as it is known."""
    results: list[Result] = []

    def step(group: str, fn: Callable[[], list[Result]]) -> None:
        if group not in groups:
            return
        print(f"[{group}] ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        found = _guarded(group, fn)
        print(f"[{group}] {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        _emit(found, lines)
        results.extend(found)

    step("compile", lambda: bench_compile.run(quick))
    step("import", lambda: bench_import.run(quick))
    step("convert", lambda: bench_convert.run(quick))
    if not _NETWORK_GROUPS.intersection(groups):
        return results
    nginx: Nginx | None = None
    nginx_tmp = scratch_dir("nginx-")
    try:
        try:
            tools = ensure_tools(_TOOLS)
            nginx = Nginx(tools["nginx"], REPO / "benchmarks" / "_work" / "www", nginx_tmp)
            nginx.start()
        except ToolError as exc:
            print(f"the cache benchmark cannot run: {exc}", file=sys.stderr)
            nginx = None
        server = nginx
        step(
            "cache", lambda: bench_cache.run(server, quick) + bench_cache.run_loaders(server, quick)
        )
    finally:
        if nginx is not None:
            nginx.stop()
        remove(nginx_tmp)
    return results


def write_report(
    path: Path,
    mode: str,
    results: list[Result],
    *,
    machine: dict[str, str],
    command: str,
    lines: list[str],
) -> None:
    """Merge this run's section into ``path`` (see :func:`benchmarks.harness.update_report`)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    section = render_section(mode, results, machine, command, "\n".join(lines))
    path.write_text(merge_report(existing, section, mode, PREAMBLE, DESIGN), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the suite, write the report; 0 when all PASS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller workloads, under a minute")
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="run only this group (repeatable); the report is then not written, except for"
        " --only convert, which has a section of its own",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=REPO / "docs" / "benchmarks.md",
        help="the markdown file to update (default: docs/benchmarks.md)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the report")
    args = parser.parse_args(argv)
    groups = tuple(args.only) if args.only else GROUPS
    mode = "quick" if args.quick else "full"
    lines: list[str] = []
    machine = machine_info()  # before the run: the load average is the one we started under
    started = time.perf_counter()
    results = run_suite(args.quick, groups, lines)
    machine["load average at end (1/5/15 min)"] = _load()
    machine["suite wall time"] = f"{time.perf_counter() - started:.0f} s"
    alone = args.only is not None and set(args.only) == {"convert"}
    if not args.no_report and (not args.only or alone):
        mode = "convert" if alone else mode
        command = ".venv/bin/python benchmarks/run.py" + (" --quick" if args.quick else "")
        command += " --only convert" if alone else ""
        write_report(args.report, mode, results, machine=machine, command=command, lines=lines)
        print(f"wrote {args.report}", file=sys.stderr)
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
