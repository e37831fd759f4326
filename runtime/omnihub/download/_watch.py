"""Liveness of a download, enforced from outside the reading threads.

One daemon thread per process (``omnihub-watchdog``, started on first use and again in a
forked child) keeps a heap of deadlines. A :class:`Watch` holds one attempt's rule: the body
must bring at least ``min_rate * window`` bytes in every ``window`` (counted from the first
response) and the attempt must end within ``deadline``; :meth:`Watch.after` arms one-off
deadlines (a response's headers). When the rule breaks, the watchdog records why and calls
the registered ``stop`` callables (a response's ``shutdown``), which wakes a blocked read;
the reader then asks :attr:`Watch.reason`. So readers fill whole buffers, and the copy loop
only adds to a counter.

Arming and cancelling cost a heap push and a lock: no thread is started per request.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Watch"]

#: ``[due, sequence, callback]``; the callback is None once cancelled or called.
_Entry = list[Any]


class _Clock:
    """Deadlines on one daemon thread: ``at(due, fn)`` calls ``fn`` at ``due`` unless cancelled."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start empty, without a thread (also in a forked child: the parent's is not there)."""
        self.cond = threading.Condition()
        self.heap: list[_Entry] = []
        self.order = itertools.count()
        self.cancelled = 0
        self.thread: threading.Thread | None = None

    def at(self, due: float, fn: Callable[[], object]) -> _Entry:
        entry: _Entry = [due, next(self.order), fn]
        with self.cond:
            heapq.heappush(self.heap, entry)
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self.run, name="omnihub-watchdog", daemon=True
                )
                self.thread.start()
            elif self.heap[0] is entry:
                self.cond.notify()
        return entry

    def cancel(self, entry: _Entry) -> None:
        with self.cond:
            if entry[2] is None:
                return
            entry[2] = None
            self.cancelled += 1
            if self.cancelled > 64 and self.cancelled * 2 > len(self.heap):
                self.heap = [e for e in self.heap if e[2] is not None]
                heapq.heapify(self.heap)
                self.cancelled = 0

    def armed(self) -> int:
        """Deadlines still pending (tests: nothing of a finished download is left)."""
        with self.cond:
            return sum(1 for e in self.heap if e[2] is not None)

    def run(self) -> None:
        while True:
            with self.cond:
                while True:
                    while self.heap and self.heap[0][2] is None:
                        heapq.heappop(self.heap)
                        self.cancelled -= 1
                    now = time.monotonic()
                    if self.heap and self.heap[0][0] <= now:
                        entry = heapq.heappop(self.heap)
                        fn, entry[2] = entry[2], None
                        break
                    self.cond.wait(self.heap[0][0] - now if self.heap else None)
            with contextlib.suppress(Exception):
                fn()


_clock = _Clock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_clock.reset)


def armed() -> int:
    """How many deadlines the watchdog still holds."""
    return _clock.armed()


class Watch:
    """One attempt's liveness rule (0 disables a part); thread-safe, shared by segments."""

    def __init__(self, min_rate: int, window: float, deadline: float) -> None:
        self.min_rate, self.window, self.deadline = min_rate, window, deadline
        self.moved = 0
        self.reason: str | None = None
        self._stops: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._timers: list[_Entry] = []
        self._checked = -1  # bytes at the last rate check; -1: no body yet
        self._closed = False
        if deadline:
            message = f"the attempt took more than OMNIHUB_ATTEMPT_DEADLINE={deadline:g} s"
            self._arm(deadline, lambda: self.fire(message))

    def _arm(self, seconds: float, fn: Callable[[], object]) -> None:
        with self._lock:
            if self.reason is None and not self._closed:
                self._timers = [e for e in self._timers if e[2] is not None]
                self._timers.append(_clock.at(time.monotonic() + seconds, fn))

    def add(self, n: int) -> None:
        """Count ``n`` bytes received."""
        with self._lock:
            self.moved += n

    def after(self, seconds: float, fn: Callable[[], object]) -> Callable[[], None]:
        """Call ``fn`` on the watchdog thread after ``seconds``; returns the cancel."""
        entry = _clock.at(time.monotonic() + seconds, fn)
        return lambda: _clock.cancel(entry)

    def guard(self, stop: Callable[[], object]) -> Callable[[], None]:
        """Call ``stop`` if the rule breaks (at once if it already has); the first guard
        starts the rate rule. Returns the unregister."""
        with self._lock:
            fired = self.reason is not None
            if not fired:
                self._stops.append(stop)
            begin = not fired and self._checked < 0 and self.min_rate and self.window
            if begin:
                self._checked = self.moved
        if fired:
            stop()
        if begin:
            self._arm(self.window, self._check)

        def unregister() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._stops.remove(stop)

        return unregister

    def _check(self) -> None:
        with self._lock:
            got, self._checked = self.moved - self._checked, self.moved
        if got < self.min_rate * self.window:
            self.fire(
                f"only {got} bytes in {self.window:g} s, less than "
                f"OMNIHUB_MIN_RATE={self.min_rate} bytes/s (OMNIHUB_RATE_WINDOW)"
            )
        else:
            self._arm(self.window, self._check)

    def fire(self, reason: str) -> None:
        """Break the rule: remember ``reason`` and stop every registered reader."""
        with self._lock:
            if self.reason is not None or self._closed:
                return
            self.reason, stops = reason, list(self._stops)
        for stop in stops:
            with contextlib.suppress(Exception):
                stop()

    def close(self) -> None:
        """The attempt is over: cancel its deadlines."""
        with self._lock:
            timers, self._timers, self._closed = self._timers, [], True
        for entry in timers:
            _clock.cancel(entry)
