"""The typed handle returned for models that have no richer loader."""

from __future__ import annotations

from pathlib import Path

import attrs

from omnihub.catalog import ModelEntry

__all__ = ["ModelFile"]


@attrs.frozen
class ModelFile:
    """A verified model file in the cache, with the catalogue entry it was fetched for."""

    path: Path
    entry: ModelEntry

    def read_bytes(self) -> bytes:
        """Return the whole file's content."""
        return self.path.read_bytes()
