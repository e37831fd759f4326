"""The typed handle returned for models that have no richer loader."""

from __future__ import annotations

from omnihub._value import Value, store

# Not ``from typing import TYPE_CHECKING``: a raw model's first call must import no library
# (issue 5, target 6; see omnihub._value).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from omnihub.catalog import ModelEntry

__all__ = ["ModelFile"]


class ModelFile(Value):
    """A verified model file in the cache, with the catalogue entry it was fetched for."""

    __slots__ = ("path", "entry")

    path: Path
    entry: ModelEntry

    def __init__(self, path: Path, entry: ModelEntry) -> None:
        store(self, locals())

    def read_bytes(self) -> bytes:
        """Return the whole file's content."""
        return self.path.read_bytes()
