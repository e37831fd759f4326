"""Download progress: a tqdm bar for large downloads on a terminal, nothing otherwise.

tqdm is imported only when a bar is actually shown, so non-interactive runs (CI, servers,
cache hits) never pay for it. ``OMNIHUB_DISABLE_PROGRESS=1`` turns bars off everywhere.
"""

from __future__ import annotations

import sys
from typing import Protocol

__all__ = ["MIN_PROGRESS_BYTES", "Progress", "progress_bar"]

#: Downloads smaller than this never show a bar (it would only flicker).
MIN_PROGRESS_BYTES = 8 << 20


class Progress(Protocol):
    """What the downloader needs from a progress display."""

    def update(self, n: int) -> object:
        """Account for ``n`` more bytes."""

    def close(self) -> None:
        """Finish the display."""


class _Silent:
    def update(self, n: int) -> object:
        return None

    def close(self) -> None:
        return None


def progress_bar(total: int | None, initial: int, label: str, *, disabled: bool) -> Progress:
    """Return a tqdm bar on an interactive stderr for a large download, else a silent stub."""
    stream = sys.stderr
    interactive = stream is not None and hasattr(stream, "isatty") and stream.isatty()
    if disabled or not interactive or total is None or total < MIN_PROGRESS_BYTES:
        return _Silent()
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=stream,
        leave=False,
    )
