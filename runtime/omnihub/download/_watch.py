"""Liveness of a download, enforced from outside the reading threads.

One daemon thread per process (``omnihub-watchdog``, started on first use, again in a forked
child) runs a heap of deadlines. A :class:`Watch` is one attempt's rule: at least
``min_rate * window`` bytes in every window from the first body on, and the whole attempt
within ``deadline``. When it breaks, the watchdog records why and calls the registered
``stop`` callables (a response's ``shutdown``), waking a blocked read; the reader then raises
with :attr:`Watch.reason`. So readers fill whole buffers and the copy loop only counts bytes;
arming costs a heap push, never a thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Watch", "armed"]


class _Clock:
    """Deadlines on one daemon thread; an entry is ``[due, order, fn]``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cond = threading.Condition()
        self.heap: list[list[Any]] = []
        self.order = itertools.count()
        self.thread: threading.Thread | None = None
        self.wake_at = math.inf  # when the thread wakes next

    def at(self, seconds: float, fn: Callable[[], object]) -> Callable[[], None]:
        """Call ``fn`` in ``seconds`` unless the returned cancel is called first."""
        due = time.monotonic() + seconds
        entry: list[Any] = [due, next(self.order), fn]
        with self.cond:
            heapq.heappush(self.heap, entry)
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self.run, name="omnihub-watchdog", daemon=True
                )
                self.thread.start()
            elif due < self.wake_at:
                self.cond.notify()  # due before the thread wakes (else no switch to it)

        def cancel() -> None:
            with self.cond, contextlib.suppress(ValueError):
                self.heap.remove(entry)  # a handful of live entries: cheaper than lazy deletion
                heapq.heapify(self.heap)

        return cancel

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.heap or self.heap[0][0] > time.monotonic():
                    self.wake_at = self.heap[0][0] if self.heap else math.inf
                    self.cond.wait(self.wake_at - time.monotonic() if self.heap else None)
                fn = heapq.heappop(self.heap)[2]
            with contextlib.suppress(Exception):
                fn()


_clock = _Clock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_clock.reset)


def armed() -> int:
    """How many deadlines are pending (nothing of a finished download may be left)."""
    with _clock.cond:
        return len(_clock.heap)


class Watch:
    """One attempt's liveness rule (0 turns a part off); thread-safe, shared by segments."""

    def __init__(self, min_rate: int, window: float, deadline: float) -> None:
        self.min_rate, self.window = min_rate, window
        self.moved = 0
        self.reason: str | None = None
        self.after = _clock.at
        self._lock = threading.Lock()
        self._stops: list[Callable[[], object]] = []
        self._cancels: list[Callable[[], None]] = []
        self._checked = -1  # bytes at the last rate check; -1: no body yet
        if deadline:
            why = f"the attempt took more than OMNIHUB_ATTEMPT_DEADLINE={deadline:g} s"
            self._cancels.append(_clock.at(deadline, lambda: self.fire(why)))

    def add(self, n: int) -> int:
        """Count ``n`` bytes received; returns the count so far."""
        with self._lock:
            self.moved += n
            return self.moved

    def guard(self, stop: Callable[[], object]) -> Callable[[], None]:
        """Call ``stop`` when the rule breaks (now if it has); the first guard starts the
        rate rule. Returns the unregister."""
        with self._lock:
            fired = self.reason is not None
            begin = not fired and self._checked < 0 and bool(self.min_rate and self.window)
            if begin:
                self._checked = self.moved
                self._cancels.append(_clock.at(self.window, self._check))
            if not fired:
                self._stops.append(stop)
        if fired:
            stop()

        def unregister() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._stops.remove(stop)

        return unregister

    def _check(self) -> None:
        with self._lock:
            got, self._checked = self.moved - self._checked, self.moved
            if got >= self.min_rate * self.window and self.reason is None:
                self._cancels[-1] = _clock.at(self.window, self._check)
                return
        self.fire(
            f"only {got} bytes in {self.window:g} s, less than "
            f"OMNIHUB_MIN_RATE={self.min_rate} bytes/s (OMNIHUB_RATE_WINDOW)"
        )

    def fire(self, reason: str) -> None:
        """Break the rule: remember ``reason`` and stop every registered reader."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason, stops = reason, list(self._stops)
        for stop in stops:
            with contextlib.suppress(Exception):
                stop()

    def close(self) -> None:
        """The attempt is over: cancel its deadlines, ignore any later firing."""
        with self._lock:
            self.reason = self.reason or "closed"
            cancels, self._cancels = self._cancels, []
        for cancel in cancels:
            cancel()
