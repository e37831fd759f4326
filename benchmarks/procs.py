"""Run child processes and measure them: wall time, exit status, peak RSS.

Every benchmark that measures omnihub does so in a fresh child process, so that imports,
caches and memory are those a user would see. :func:`run_measured` reaps the child with a
blocking ``os.wait4`` (exact wall time).

A :class:`Gate` is a start line for a group of children (the 16-process benchmark): each
child does its imports, says it is ready, and blocks until the parent releases all of them at
once, so what is timed is the asking, not interpreter start-up.

Peak memory is *not* the child's ``ru_maxrss``: Linux carries the parent's high-water mark
across fork and exec, so every child of this (large) process would report at least the
suite's own RSS. With ``track_rss`` a sampler thread reads the child's ``VmHWM`` (the
high-water mark of its own address space) from ``/proc/<pid>/status`` until it exits.
"""

from __future__ import annotations

import os
import select
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "ChildFailed",
    "Gate",
    "Measured",
    "Running",
    "run_measured",
    "start",
    "vm_hwm",
    "wait_measured",
]


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
    pass_fds: Sequence[int] = (),
) -> Running:
    """Start ``cmd``, its stdout and stderr going to anonymous temporary files.

    ``pass_fds`` are inherited by the child under the same numbers (a :class:`Gate`'s pipes).
    """
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
        pass_fds=tuple(pass_fds),
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


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, without reaping it (wait_measured reaps it)."""
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    return os.waitid(os.P_PID, pid, flags) is not None


class Gate:
    """A start line for child processes: ready, then all released at once.

    Two pipes. Each child inherits the write end of *ready* and the read end of *release*
    (:attr:`pass_fds`; their numbers go on its command line, :meth:`child_args`). A child does
    everything it would have done before asking (start, imports), writes one byte to *ready*,
    and blocks reading *release*. :meth:`wait_ready` counts the bytes; :meth:`release` closes
    the parent's write end of *release*, so every blocked ``read`` returns end-of-file at the
    same moment -- one system call wakes them all, and none is favoured by the order of
    writes. If the parent dies, the pipe closes too: a gated child can never hang.

    Timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for the whole machine),
    so the children's own timestamps compare with :attr:`released`.
    """

    def __init__(self) -> None:
        self._ready_r, self._ready_w = os.pipe()
        self._release_r, self._release_w = os.pipe()
        self._children_started = False
        self.released: float | None = None  # monotonic time of release()

    @property
    def pass_fds(self) -> tuple[int, int]:
        """The descriptors a gated child must inherit: (ready write end, release read end)."""
        return (self._ready_w, self._release_r)

    def child_args(self) -> list[str]:
        """``--gate READY_FD RELEASE_FD``: how a child (benchmarks/child.py) finds the gate."""
        return ["--gate", str(self._ready_w), str(self._release_r)]

    def children_started(self) -> None:
        """Drop the parent's copies of the children's ends, once every child is started.

        Afterwards *ready* reaches end-of-file when every child has exited or closed it, so a
        group whose children all died before getting ready is noticed at once.
        """
        if not self._children_started:
            self._children_started = True
            os.close(self._ready_w)
            os.close(self._release_r)

    def wait_ready(self, running: Sequence[Running], timeout: float) -> float:
        """Block until each of ``running`` wrote its ready byte; return the monotonic time.

        Raises :class:`ChildFailed` if a child exits before it is ready, or on ``timeout``.
        """
        self.children_started()
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < len(running):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(
                    f"{len(running) - ready} of {len(running)} children not ready "
                    f"after {timeout:.0f}s"
                )
            readable, _, _ = select.select([self._ready_r], [], [], min(left, 0.05))
            if readable:
                got = os.read(self._ready_r, 4096)
                if not got:
                    raise ChildFailed(
                        f"{len(running) - ready} of {len(running)} children exited before ready"
                    )
                ready += len(got)
            elif ready < len(running):
                for child in running:
                    if _exited(child.proc.pid):
                        raise ChildFailed(f"{child.proc.args!r} exited before ready")
        if ready > len(running):
            raise ChildFailed(f"{ready} ready bytes from {len(running)} children")
        return time.monotonic()

    def release(self) -> float:
        """Release every waiting child at once; return the monotonic time just before."""
        self.children_started()
        if self.released is None:
            self.released = time.monotonic()
            os.close(self._release_w)
        return self.released

    def close(self) -> None:
        """Close whatever the parent still holds (releasing any child still waiting)."""
        self.children_started()
        self.release()
        os.close(self._ready_r)
