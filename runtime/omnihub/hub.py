"""Resolve, download, verify and cache model files.

PLACEHOLDER skeleton -- the runtime work (issue 3) replaces the body. Contract:
``fetch(entry, *, force_download=False) -> Path`` returns the verified file at
``$OMNIHUB_HOME/<framework>/<file>``; a cache hit opens no socket and imports neither
requests nor tqdm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omnihub.catalog import ModelEntry

__all__ = ["fetch"]


def fetch(entry: ModelEntry, *, force_download: bool = False) -> Path:
    """Return the verified local path of ``entry``'s file, downloading it if needed."""
    raise NotImplementedError("omnihub.hub.fetch is not implemented yet")
