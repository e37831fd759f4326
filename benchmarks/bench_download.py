"""Targets 4-6: downloads from the private loopback nginx.

ours is always ``omnihub.hub.fetch`` of a raw catalogue entry (declared sha256 and size) in a
fresh child process with its own ``OMNIHUB_HOME``, timed around the call inside the child;
its peak RSS is the child's VmHWM (its own address space's high-water mark), reported by
the child itself at the end and sampled by the parent while it runs; curl's is sampled.

- single stream (4): 1 GiB (256 MiB quick) from the unlimited location; baseline
  ``curl -s -o FILE`` to the same disk, its ``time_total``.
- parallel (5): 200 MiB (64 MiB quick) from the ``limit_rate 20m`` location; baselines
  ``aria2c -x8 -s8 -k1M --checksum=sha-256=..`` (verifies too) and ``curl`` (one stream).
- concurrency (6): 16 fresh processes ask for one uncached model at once; baseline one fresh
  process doing the same download. Wall times include interpreter start in both. nginx's
  access log must show the file's bytes served once in total.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from benchmarks.harness import Result, Target, median
from benchmarks.procs import ChildFailed, Measured, run_measured, start, wait_measured
from benchmarks.servers import AccessEntry, Nginx
from benchmarks.workload import (
    FRAMEWORK_DIR,
    REPO,
    TestFile,
    Unavailable,
    child_env,
    entry_json,
    regular_python,
    remove,
    scratch_dir,
    test_file,
)

__all__ = ["GROUPS", "TARGETS", "concurrency", "parallel", "single_stream", "unavailable"]

_CHILD = REPO / "benchmarks" / "child.py"
_MiB = float(1 << 20)

#: name -> (target, unit) of every line this module prints.
TARGETS: dict[str, tuple[Target, str]] = {
    "download_single_stream": (Target("ratio", ">=", 0.95), "MiB/s"),
    "download_peak_rss": (Target("ours", "<=", 64.0, "MiB"), "MiB"),
    "download_parallel_vs_aria2c": (Target("ratio", ">=", 0.9), "MiB/s"),
    "download_parallel_vs_one_stream": (Target("ratio", ">=", 5.0), "MiB/s"),
    "download_16_processes": (Target("ratio", "<=", 1.2), "s"),
}
GROUPS = {
    "single": ("download_single_stream", "download_peak_rss"),
    "parallel": ("download_parallel_vs_aria2c", "download_parallel_vs_one_stream"),
    "concurrency": ("download_16_processes",),
}


def unavailable(group: str, reason: str) -> list[Result]:
    """The n/a lines of ``group`` when it cannot run at all (no nginx, curl or aria2c)."""
    return [Result(name, None, None, *TARGETS[name], note=reason) for name in GROUPS[group]]


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fetch(
    test: TestFile, base_url: str, home: Path, timeout: float, *, preimport: bool = False
) -> tuple[float, int, float]:
    """One ``omnihub.hub.fetch`` in a fresh process: (seconds in fetch, peak RSS, imports).

    With ``preimport`` the child imports the libraries a download uses before the timed call
    and reports that time separately (see :func:`single_stream`).
    """
    env = child_env(OMNIHUB_HOME=str(home), OMNIHUB_URL=base_url)
    flags = ["--preimport"] if preimport else []
    measured = run_measured(
        [regular_python(), _CHILD, "fetch", entry_json(test, base_url), *flags],
        env,
        timeout=timeout,
        track_rss=True,
    )
    report = json.loads(measured.stdout)
    expected = home / FRAMEWORK_DIR / test.name
    if Path(report["path"]) != expected:
        raise ChildFailed(f"fetch returned {report['path']}, expected {expected}")
    rss = max(measured.max_rss, int(report["vm_hwm"]))
    return float(report["elapsed"]), rss, float(report.get("imports", 0.0))


def _curl(curl: Path, url: str, dest: Path, timeout: float) -> tuple[float, int]:
    measured = run_measured(
        [curl, "-s", "-f", "-o", dest, "-w", "%{time_total}", url], timeout=timeout, track_rss=True
    )
    return float(measured.stdout.strip()), measured.max_rss


def _attempt(fn: Callable[[], float]) -> tuple[float | None, str]:
    try:
        return fn(), ""
    except (Unavailable, ChildFailed, OSError, ValueError, KeyError) as exc:
        return None, f"ours: {type(exc).__name__}: {exc}. "


def single_stream(nginx: Nginx, tools: Mapping[str, Path], quick: bool) -> list[Result]:
    """download_single_stream (throughput vs curl) and download_peak_rss."""
    mib, repetitions = (256, 3) if quick else (1024, 5)
    test = test_file(mib)
    url = f"{nginx.url('full')}/{FRAMEWORK_DIR}/{test.name}"
    curl_times: list[float] = []
    curl_rss: list[int] = []
    ours_times: list[float] = []
    ours_rss: list[int] = []
    verified: list[bool] = []
    sequential: list[float] = []
    imports: list[float] = []
    note = ""
    work = scratch_dir("single-")
    try:
        for i in range(repetitions):
            home = work / f"home{i}"

            def curl_once() -> None:
                dest = work / "curl.bin"
                seconds, rss = _curl(tools["curl"], url, dest, timeout=300)
                curl_times.append(seconds)
                curl_rss.append(rss)
                # The same work as ours, done one after the other: hash, then fsync.
                started = time.perf_counter()
                sha256_of(dest)
                with dest.open("rb+") as f:
                    os.fsync(f.fileno())
                sequential.append(seconds + time.perf_counter() - started)
                dest.unlink()

            def ours_once(home: Path = home) -> float:
                seconds, rss, imported = _fetch(
                    test, nginx.url("full"), home, timeout=300, preimport=True
                )
                imports.append(imported)
                ours_rss.append(rss)
                verified.append(sha256_of(home / FRAMEWORK_DIR / test.name) == test.sha256)
                remove(home)
                return seconds

            # Alternate who goes first; flush dirty pages so neither pays for the other's.
            for turn in ("curl", "ours") if i % 2 == 0 else ("ours", "curl"):
                os.sync()
                if turn == "curl":
                    curl_once()
                elif note == "":
                    seconds_ours, note = _attempt(ours_once)
                    if seconds_ours is not None:
                        ours_times.append(seconds_ours)
    finally:
        remove(work)
    size = test.size / _MiB
    ours = size / median(ours_times) if ours_times else None
    how = f"{mib} MiB, median of {len(curl_times)}"
    if ours_times:
        # Library start-up is reported, not hidden: curl's time_total starts after curl's own
        # process start and libcurl/OpenSSL initialisation; ours starts after the interpreter
        # start and the imports, which are measured in the same child and shown here.
        with_imports = size / (median(ours_times) + median(imports))
        how += (
            f"; ours = fetch() after importing omnihub.download, requests and filelock "
            f"({1000 * median(imports):.0f}ms, not timed, like curl's start-up and libcurl "
            f"init); counting them ours = {with_imports:.0f}MiB/s "
            f"(ratio {with_imports / (size / median(curl_times)):.2f})"
        )
    checks = {"sha256 verified": all(verified)}
    return [
        Result(
            "download_single_stream",
            ours,
            size / median(curl_times),
            *TARGETS["download_single_stream"],
            checks=checks,
            note=f"{note}{how}; baseline: curl -s -o FILE (same disk), time_total; curl then "
            f"sha256 then fsync, one after the other: {size / median(sequential):.0f}MiB/s",
        ),
        Result(
            "download_peak_rss",
            max(ours_rss) / _MiB if ours_rss else None,
            max(curl_rss) / _MiB,
            *TARGETS["download_peak_rss"],
            note=f"peak RSS of the fetching process ({mib} MiB file); baseline: curl's",
        ),
    ]


def parallel(nginx: Nginx, tools: Mapping[str, Path], quick: bool) -> list[Result]:
    """download_parallel_vs_aria2c and download_parallel_vs_one_stream (limit_rate 20m)."""
    mib = 64 if quick else 200
    test = test_file(mib)
    base = nginx.url("limited")
    url = f"{base}/{FRAMEWORK_DIR}/{test.name}"
    work = scratch_dir("parallel-")
    try:
        aria = run_measured(
            [
                tools["aria2c"],
                "-q",
                "-x8",
                "-s8",
                "-k1M",
                "--allow-overwrite=true",
                "--file-allocation=none",
                f"--checksum=sha-256={test.sha256}",
                "-d",
                work,
                "-o",
                "aria.bin",
                url,
            ],
            timeout=300,
        )
        (work / "aria.bin").unlink()
        curl_seconds, _ = _curl(tools["curl"], url, work / "curl.bin", timeout=600)
        (work / "curl.bin").unlink()
        home = work / "home"
        verified: list[bool] = []

        def once() -> float:
            seconds, _rss, _imports = _fetch(test, base, home, timeout=600)
            verified.append(sha256_of(home / FRAMEWORK_DIR / test.name) == test.sha256)
            return seconds

        mark = len(nginx.entries())
        ours_seconds, note = _attempt(once)
        uri = f"/limited/{FRAMEWORK_DIR}/{test.name}"
        ours_requests = [e for e in nginx.entries()[mark:] if e.uri == uri]
    finally:
        remove(work)
    size = test.size / _MiB
    ours = None if ours_seconds is None else size / ours_seconds
    checks = {"sha256 verified": all(verified)}
    common = (
        f"{note}{mib} MiB, nginx limit_rate 20m per connection; ours made "
        f"{len(ours_requests)} requests ({_statuses(ours_requests)})"
    )
    return [
        Result(
            "download_parallel_vs_aria2c",
            ours,
            size / aria.wall,
            *TARGETS["download_parallel_vs_aria2c"],
            checks=checks,
            note=f"{common}; baseline: aria2c -x8 -s8 -k1M with sha-256 check, wall time",
        ),
        Result(
            "download_parallel_vs_one_stream",
            ours,
            size / curl_seconds,
            *TARGETS["download_parallel_vs_one_stream"],
            checks=checks,
            note=f"{common}; baseline: curl -s -o FILE, one stream",
        ),
    ]


#: What every fetching child must import at least (a waiter needs nothing more).
_IMPORTS = "import json, omnihub.catalog, omnihub.hub"
#: Bytes nginx may count beyond the file's size in one download: a full-body (200) response
#: that the client stops reading (it switched to ranges) still had its socket buffers filled.
#: A second download, even a partial one cut short, would exceed this.
_OVERSEND = 16 << 20


def _statuses(entries: list[AccessEntry]) -> str:
    """``1x200, 7x206``: what nginx answered, for the notes."""
    counts = Counter(e.status for e in entries)
    return ", ".join(f"{n}x{status}" for status, n in sorted(counts.items())) or "none"


def _storm(
    commands: list[list[str | Path]], env: dict[str, str], timeout: float
) -> tuple[float, list[Measured]]:
    """Start all ``commands`` at once; (wall from the first start to the last exit, results)."""
    running = [start(cmd, env) for cmd in commands]
    first = running[0].started
    finished = [wait_measured(r, timeout=timeout, check=False) for r in running]
    last = max(r.started + m.wall for r, m in zip(running, finished, strict=True))
    return last - first, finished


def concurrency(nginx: Nginx, quick: bool, processes: int = 16) -> list[Result]:
    """download_16_processes: wall of 16 concurrent fetches vs one (unlimited location)."""
    mib = 256 if quick else 1024
    test = test_file(mib)
    base = nginx.url("full")
    uri = f"/full/{FRAMEWORK_DIR}/{test.name}"
    python = regular_python()
    env_cmd: list[str | Path] = [python, _CHILD, "fetch", entry_json(test, base)]
    work = scratch_dir("concurrency-")
    checks: dict[str, bool] = {}
    note = ""
    ours: float | None = None
    baseline: float | None = None
    try:
        single_home = work / "single"
        mark = len(nginx.entries())
        try:
            baseline = run_measured(
                env_cmd,
                child_env(OMNIHUB_HOME=str(single_home), OMNIHUB_URL=base),
                timeout=600,
            ).wall
        except ChildFailed as exc:
            note = f"ours: {exc}. "
        remove(single_home)
        if baseline is not None:
            mark = len(nginx.entries())
            home = work / "shared"
            env = child_env(OMNIHUB_HOME=str(home), OMNIHUB_URL=base)
            ours, finished = _storm([env_cmd] * processes, env, timeout=900)
            served = [e for e in nginx.entries()[mark:] if e.uri == uri]
            sent = sum(e.body_bytes for e in served)
            paths = set()
            for m in finished:
                if m.returncode == 0:
                    paths.add(json.loads(m.stdout)["path"])
            ok = [m.returncode == 0 for m in finished]
            checks = {
                "one download": test.size <= sent <= test.size + _OVERSEND,
                "all succeeded": all(ok),
                "all verified": len(paths) == 1
                and sha256_of(home / FRAMEWORK_DIR / test.name) == test.sha256,
            }
            # What 16 interpreters cost on this machine before downloading anything.
            floor, _ = _storm([[python, "-c", _IMPORTS]] * processes, env, timeout=300)
            layout = "no editable-install hook" if python != Path(sys.executable) else "editable"
            note = (
                f"{sum(ok)}/{processes} succeeded; nginx served {sent / _MiB:.1f} MiB of the "
                f"{mib} MiB file in {len(served)} requests ({_statuses(served)}); "
                f"{processes} interpreters that only import omnihub.catalog and omnihub.hub "
                f"take {floor:.2f}s; children run from a regular-install layout "
                f"({layout}). "
            )
    finally:
        remove(work)
    return [
        Result(
            "download_16_processes" if processes == 16 else f"download_{processes}_processes",
            ours,
            baseline,
            *TARGETS["download_16_processes"],
            checks=checks,
            note=f"{note}wall incl. interpreter start; baseline: one process, same download",
        )
    ]
