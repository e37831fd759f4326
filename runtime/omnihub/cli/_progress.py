"""Per-model progress bars for downloads the CLI runs through :func:`omnihub.hub.fetch`.

The runtime streams every download into ``<target>.incomplete`` beside the cache target, so
the CLI can show one bar per model -- for any transport, ``file://`` included -- by watching
those files grow from a background thread, without any hook into the download code.

On a terminal the bars are live (one line per model). On anything else (a log, a pipe, CI)
live bars would be a mess of carriage returns, so each model gets one finished bar line
when it completes. tqdm is imported only when bars are shown.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omnihub.catalog import ModelEntry
from omnihub.hub import partial_path
from omnihub.search import qualified_name

__all__ = ["ProgressBoard", "progress_board"]

_POLL_SECONDS = 0.1


def _columns(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class ProgressBoard:
    """One tqdm bar per model, fed by the size of its ``.incomplete`` file.

    ``enabled=False`` makes every method a no-op (and imports nothing).
    """

    def __init__(
        self, entries: Sequence[tuple[ModelEntry, Path]], *, enabled: bool, stream: Any
    ) -> None:
        self._lock = threading.Lock()
        self._enabled = enabled
        self._bars: dict[str, Any] = {}
        self._partials: dict[str, Path] = {}
        self._totals = {qualified_name(e): e.size for e, _ in entries}
        self._stream = stream
        self._started = time.monotonic()
        self._width = max((len(key) for key in self._totals), default=0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        isatty = getattr(stream, "isatty", None)
        if not enabled or not (callable(isatty) and isatty()):
            return
        from tqdm import tqdm

        # a terminal that reports no size (a fresh pty, `docker -t`) would get empty bars
        sized = _columns(stream) > 0
        for position, (entry, target) in enumerate(entries):
            key = qualified_name(entry)
            self._partials[key] = partial_path(target)
            self._bars[key] = tqdm(
                total=entry.size,
                desc=key.ljust(self._width),
                position=position,
                file=stream,
                leave=True,
                dynamic_ncols=sized,
                ncols=None if sized else 100,
                nrows=None if sized else 40,
                mininterval=0,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
            )
        self._thread = threading.Thread(target=self._poll, name="omnihub-progress", daemon=True)
        self._thread.start()

    def _set(self, key: str, size: int) -> None:
        bar = self._bars[key]
        if size != bar.n:
            bar.n = size
            bar.refresh()

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            with self._lock:
                for key, partial in self._partials.items():
                    try:
                        size = partial.stat().st_size
                    except OSError:
                        continue
                    self._set(key, size)

    def finish(self, entry: ModelEntry, size: int | None, *, ok: bool) -> None:
        """Mark ``entry`` done: fill its bar to ``size``, or flag it as failed."""
        if not self._enabled:
            return
        key = qualified_name(entry)
        with self._lock:
            self._partials.pop(key, None)
            bar = self._bars.get(key)
            if bar is None:  # not a terminal: one finished bar line
                self._static_line(key, size, ok=ok)
                return
            if ok and size is not None:
                if bar.total is None:
                    bar.total = size
                self._set(key, size)
            if not ok:
                bar.set_postfix_str("failed", refresh=True)

    def _static_line(self, key: str, size: int | None, *, ok: bool) -> None:
        from tqdm import tqdm

        total = self._totals.get(key) or size
        line = tqdm.format_meter(
            n=size if ok and size is not None else 0,
            total=float(total) if total is not None else None,  # type: ignore[arg-type]
            elapsed=time.monotonic() - self._started,
            ncols=80,
            prefix=key.ljust(self._width),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
        )
        self._stream.write(line + ("" if ok else "  failed") + "\n")
        self._stream.flush()

    def write(self, line: str, file: Any) -> None:
        """Print ``line`` to ``file`` without tearing the bars."""
        if self._bars:
            from tqdm import tqdm

            with self._lock:
                tqdm.write(line, file=file)
        else:
            file.write(line + "\n")
            file.flush()

    def close(self) -> None:
        """Stop polling and close every bar."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()


@contextmanager
def progress_board(
    entries: Sequence[tuple[ModelEntry, Path]], *, enabled: bool, stream: Any
) -> Iterator[ProgressBoard]:
    """A :class:`ProgressBoard` closed on exit, even on error or Ctrl-C."""
    board = ProgressBoard(entries, enabled=enabled, stream=stream)
    try:
        yield board
    finally:
        board.close()
