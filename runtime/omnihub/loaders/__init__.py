"""Loaders: turn a verified model file into a typed Python object.

PLACEHOLDER skeleton -- the loaders work (issue 4) replaces the body. The contract the rest
of the code relies on:

- ``load(entry, path) -> object``: pick a loader by ``entry.factory`` (a "module:callable"),
  else by (format, framework, model_type), else the raw :class:`~omnihub.model_file.ModelFile`.
- ``result_type(entry) -> tuple[str, str]``: ``(module, qualname)`` of the type ``load`` returns
  for that entry, used by the compiler to annotate generated functions. It must not import
  heavy libraries.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omnihub.catalog import ModelEntry

__all__ = ["load", "result_type"]


def result_type(entry: ModelEntry) -> tuple[str, str]:
    """Return ``(module, qualname)`` of what :func:`load` returns for ``entry``."""
    return ("omnihub.model_file", "ModelFile")


def load(entry: ModelEntry, path: Path) -> object:
    """Load ``path`` (already verified) as the model ``entry`` describes."""
    from omnihub.model_file import ModelFile

    return ModelFile(path, entry)
