"""Loaders: turn a verified model file into a typed Python object.

The contract the rest of omnihub relies on:

- ``load(entry, path) -> object``: pick a loader by ``entry.factory`` (a ``"module:callable"``
  called as ``factory(path, entry)``), else by (format, framework, model_type), else return
  the raw :class:`~omnihub.model_file.ModelFile`.
- ``result_type(entry) -> tuple[str, str]``: ``(module, qualname)`` of the type ``load``
  returns for that entry, used by the compiler to annotate generated functions. It imports
  nothing heavy.

Built-in loaders (each imports its heavy dependency only when it runs):

============  ================================================================
format        returns
============  ================================================================
samediff      :class:`omnihub.loaders.samediff.SameDiffGraph`
dl4j          :class:`omnihub.loaders.dl4j.MultiLayerNetwork` / ``ComputationGraph``
onnx          ``onnx.ModelProto``
safetensors   :class:`omnihub.loaders.safetensors_model.SafeTensorsWeights`
gguf          :class:`omnihub.loaders.gguf_model.GGUFModel`
raw           :class:`omnihub.model_file.ModelFile`
============  ================================================================

Add loaders with :func:`register` or an ``omnihub.loaders`` entry point (see docs/loaders.md).
"""

from __future__ import annotations

from pathlib import Path

from omnihub.loaders._registry import (
    ENTRY_POINT_GROUP,
    LoaderSpec,
    find_loader,
    load,
    register,
    registered_loaders,
    result_type,
)

# Not ``from typing import TYPE_CHECKING``: loading is part of every model call.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from omnihub.catalog import ModelEntry
    from omnihub.model_file import ModelFile

__all__ = [
    "ENTRY_POINT_GROUP",
    "LoaderSpec",
    "find_loader",
    "load",
    "load_raw",
    "register",
    "registered_loaders",
    "result_type",
]


def load_raw(entry: ModelEntry, path: Path) -> ModelFile:
    """The ``raw`` format's loader: the verified file itself, as a :class:`ModelFile`."""
    from omnihub.model_file import ModelFile

    return ModelFile(Path(path), entry)
