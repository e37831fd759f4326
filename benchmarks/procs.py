"""Run child processes and measure them: wall time, exit status, peak RSS.

Every benchmark that measures omnihub does so in a fresh child process, so that imports,
caches and memory are those a user would see. :func:`run_measured` reaps the child with a
blocking ``os.wait4`` (exact wall time).

Peak memory is *not* the child's ``ru_maxrss``: Linux carries the parent's high-water mark
across fork and exec, so every child of this (large) process would report at least the
suite's own RSS. With ``track_rss`` a sampler thread reads the child's ``VmHWM`` (the
high-water mark of its own address space) from ``/proc/<pid>/status`` until it exits.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["ChildFailed", "Measured", "Running", "run_measured", "start", "vm_hwm", "wait_measured"]


class ChildFailed(RuntimeError):
    """A measured child exited non-zero; the message carries its command and stderr tail."""


@dataclass(frozen=True)
class Measured:
    """What one finished child did."""

    wall: float  # seconds from start to exit, measured by the parent
    returncode: int
    stdout: str
    stderr: str
    max_rss: int  # bytes, the child's peak resident set size (0 unless tracked)


def start(
    cmd: Sequence[str | Path],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Running:
    """Start ``cmd``, its stdout and stderr going to anonymous temporary files."""
    # Closed by wait_measured once the child is reaped.
    out = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
    err = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
        cwd=cwd,
    )
    return Running(proc, started, out, err)


@dataclass(frozen=True)
class Running:
    """A started child and where its output goes."""

    proc: subprocess.Popen[bytes]
    started: float
    out: IO[str]
    err: IO[str]


def vm_hwm(pid: int | str) -> int:
    """The peak RSS in bytes of process ``pid`` ("self" works), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _RssSampler(threading.Thread):
    """Samples a child's VmHWM every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, vm_hwm(self.pid))
            self.stopped.wait(self.interval)


def wait_measured(
    running: Running, timeout: float, *, check: bool = True, track_rss: bool = False
) -> Measured:
    """Wait (at most ``timeout`` seconds, then kill) for a child and measure it.

    The child is reaped with a blocking ``os.wait4`` (exact wall time); a timer kills it if
    it overruns, so the wait is always bounded.
    """
    proc = running.proc
    timer = threading.Timer(timeout, proc.kill)
    sampler = _RssSampler(proc.pid) if track_rss else None
    timer.start()
    if sampler is not None:
        sampler.start()
    try:
        _pid, status, _usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        if sampler is not None:
            sampler.stopped.set()
            sampler.join()
    wall = time.perf_counter() - running.started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    outputs = []
    for stream in (running.out, running.err):
        stream.seek(0)
        outputs.append(stream.read())
        stream.close()
    peak = 0 if sampler is None else sampler.peak
    result = Measured(wall, proc.returncode, outputs[0], outputs[1], peak)
    if check and result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-6:])
        killed = " (killed: timeout)" if wall >= timeout else ""
        raise ChildFailed(f"{proc.args!r} exited {result.returncode}{killed}: {tail}")
    return result


def run_measured(
    cmd: Sequence[str | Path],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 600,
    cwd: Path | None = None,
    check: bool = True,
    track_rss: bool = False,
) -> Measured:
    """Run ``cmd`` to completion and measure it (see :class:`Measured`)."""
    return wait_measured(start(cmd, env, cwd), timeout, check=check, track_rss=track_rss)
