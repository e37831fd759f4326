"""ONNX loader: an ``onnx.ModelProto``, with external data read from beside the file.

External tensor data is only read from regular files inside the model's directory: a
location that is absolute, climbs out with ``..``, or is a symbolic link is rejected before
``onnx`` opens anything, as is an offset/length pointing past the end of the data file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from omnihub.errors import LoadError
from omnihub.loaders._sniff import reject_lfs_pointer

if TYPE_CHECKING:
    import onnx

    from omnihub.catalog import ModelEntry

__all__ = ["load_onnx", "read_onnx"]


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers, sparse ones, attributes, and subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _check_external(model: onnx.ModelProto, path: Path) -> bool:
    """Validate every external-data reference; return whether there are any."""
    import onnx

    base = path.parent.resolve()
    found = False
    for tensor in _graph_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        found = True
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{path}: tensor {tensor.name!r} external data {location!r}"
        pure = PurePath(location)
        if not location or pure.is_absolute() or ".." in pure.parts or "\\" in location:
            raise LoadError(f"{where}: location must be a relative path inside {base}")
        target = base / location
        if target.is_symlink() or not target.is_file():
            raise LoadError(f"{where}: not a regular file next to the model")
        if target.resolve().parent != base and base not in target.resolve().parents:
            raise LoadError(f"{where}: resolves outside {base}")
        size = target.stat().st_size
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError as exc:
            raise LoadError(f"{where}: bad offset/length: {exc}") from exc
        if offset < 0 or length < 0 or offset + length > size:
            raise LoadError(
                f"{where}: offset {offset} + length {length} is past the end of the "
                f"{size}-byte file"
            )
    return found


def read_onnx(path: Path) -> onnx.ModelProto:
    """Parse ``path`` (and its external data); :class:`LoadError` on anything malformed."""
    import onnx
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    path = Path(path)
    reject_lfs_pointer(path, "ONNX")
    try:
        model = onnx.load_model(os.fspath(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise LoadError(f"{path}: not a valid ONNX model: {exc}") from exc
    if not model.graph.node and not model.graph.initializer and not model.opset_import:
        raise LoadError(f"{path}: not a valid ONNX model: no graph, weights or opset")
    if _check_external(model, path):
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, os.fspath(path.parent))
        except (OSError, ValueError, RuntimeError) as exc:
            raise LoadError(f"{path}: cannot read external data: {exc}") from exc
    return model


def load_onnx(entry: ModelEntry, path: Path) -> onnx.ModelProto:
    """The ``onnx`` format's loader."""
    return read_onnx(path)
