"""Test helpers: catalogue entries, the shared fixtures, and writers for the formats we read.

The writers here are independent re-implementations of the *writing* side (FlatBuffers via
``flatbuffers.Builder``, ``Nd4j.write`` via ``struct`` in Java's DataOutputStream layout), so
that round-trip properties test the readers against the format, not against themselves.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry

#: <repo>/../shared, the read-only reference data.
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def shared_dir(*parts: str) -> Path:
    """A directory under ../shared, or skip the test with the reason."""
    path = SHARED.joinpath("data", *parts)
    if not path.is_dir():
        pytest.skip(f"reference data {path} is absent (expected <repo>/../shared)")
    return path


def make_entry(
    fmt: Format,
    framework: Framework = Framework.SAMEDIFF,
    model_type: ModelType = ModelType.SAMEDIFF_PIPELINE,
    **fields: Any,
) -> ModelEntry:
    """A catalogue entry for tests, with placeholder values for what loading ignores."""
    defaults: dict[str, Any] = {
        "name": "test_model",
        "python_name": "test_model",
        "namespace": "TestModels",
        "package": "test_models",
        "documentation": "a test model",
        "file": "test_model.bin",
    }
    defaults.update(fields)
    return ModelEntry(framework=framework, model_type=model_type, format=fmt, **defaults)


# -- FlatBuffers (SameDiff) writer ---------------------------------------------------------------

DTYPE_CODES = {"bool": 1, "float16": 3, "float32": 5, "float64": 6, "int8": 7, "int16": 8}
DTYPE_CODES.update({"int32": 9, "int64": 10, "uint8": 11, "uint16": 12})


@attrs.frozen
class Var:
    """A variable to write: kind is the VarType code (0 VARIABLE .. 3 PLACEHOLDER)."""

    name: str
    kind: int
    node: int
    array: npt.NDArray[Any] | None = None
    shape: tuple[int, ...] | None = None
    dtype_code: int = 5
    big_endian: bool = True
    order: str = "c"
    index: int = 0  # the output index in the variable's (node, index) id


@attrs.frozen
class Node:
    """An op to write; inputs are (node id, output index) pairs."""

    node_id: int
    name: str
    op_name: str
    inputs: tuple[tuple[int, int], ...]
    outputs: tuple[str, ...]
    float_args: tuple[float, ...] = ()  # extraParams (tArgs)
    int_args: tuple[int, ...] = ()  # extraInteger (iArgs)
    bool_args: tuple[bool, ...] = ()  # extraBools (bArgs)
    dimensions: tuple[int, ...] = ()
    dtype_args: tuple[int, ...] = ()  # extraTypes (dArgs), DType codes


def _shape_info(shape: Sequence[int], order: str) -> list[int]:
    rank = len(shape)
    strides: list[int] = []
    acc = 1
    dims = list(shape) if order == "f" else list(reversed(shape))
    for d in dims:
        strides.append(acc)
        acc *= d
    if order == "c":
        strides.reverse()
    return [rank, *shape, *strides, 0, 1, ord(order)]


def _vector_of_offsets(builder: Any, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return int(builder.EndVector())


def _vector_of_longs(builder: Any, values: Sequence[int]) -> int:
    return _scalars(builder, values, 8, "PrependInt64")


def _int_pair(builder: Any, first: int, second: int) -> int:
    builder.StartObject(2)
    builder.PrependInt32Slot(0, first, 0)
    builder.PrependInt32Slot(1, second, 0)
    return int(builder.EndObject())


def _flat_array(builder: Any, var: Var) -> int | None:
    if var.array is None and var.shape is None:
        return None
    shape = var.array.shape if var.array is not None else var.shape
    assert shape is not None
    info = _vector_of_longs(builder, _shape_info(shape, var.order))
    buffer = None
    if var.array is not None:
        arr = var.array.astype(var.array.dtype.newbyteorder(">" if var.big_endian else "<"))
        raw = arr.tobytes(order="F" if var.order == "f" else "C")
        buffer = builder.CreateByteVector(raw)
    builder.StartObject(4)
    builder.PrependUOffsetTRelativeSlot(0, info, 0)
    if buffer is not None:
        builder.PrependUOffsetTRelativeSlot(1, buffer, 0)
    builder.PrependInt8Slot(2, var.dtype_code, 0)
    builder.PrependInt8Slot(3, 1 if var.big_endian else 0, 0)
    return int(builder.EndObject())


def _scalars(builder: Any, values: Sequence[Any], size: int, prepend: str) -> int:
    """A vector of scalars, ``prepend`` naming the builder method (e.g. ``PrependBool``)."""
    builder.StartVector(size, len(values), size)
    for value in reversed(values):
        getattr(builder, prepend)(value)
    return int(builder.EndVector())


def _node_args(builder: Any, node: Node) -> dict[int, int]:
    """The FlatNode argument vectors (slot -> offset): tArgs 8, iArgs 9, bArgs 10, dims 11,
    dArgs 22."""
    vectors = (
        (8, node.float_args, 8, "PrependFloat64"),
        (9, node.int_args, 8, "PrependInt64"),
        (10, node.bool_args, 1, "PrependBool"),
        (11, node.dimensions, 4, "PrependInt32"),
        (22, node.dtype_args, 1, "PrependInt8"),
    )
    return {
        slot: _scalars(builder, values, size, prepend)
        for slot, values, size, prepend in vectors
        if values
    }


def build_flatgraph(
    variables: Sequence[Var],
    nodes: Sequence[Node] = (),
    placeholders: Sequence[str] = (),
    outputs: Sequence[tuple[int, int]] = (),
    training_config: str | None = None,
) -> bytes:
    """A FlatGraph buffer written with ``flatbuffers.Builder`` following graph.fbs."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    var_offsets = []
    for var in variables:
        name = builder.CreateString(var.name)
        array = _flat_array(builder, var)
        var_id = _int_pair(builder, var.node, var.index)
        shape = None
        if var.shape is not None:
            shape = _vector_of_longs(builder, var.shape)
        builder.StartObject(10)
        builder.PrependUOffsetTRelativeSlot(0, var_id, 0)
        builder.PrependUOffsetTRelativeSlot(1, name, 0)
        builder.PrependInt8Slot(2, var.dtype_code, 0)
        if shape is not None:
            builder.PrependUOffsetTRelativeSlot(3, shape, 0)
        if array is not None:
            builder.PrependUOffsetTRelativeSlot(4, array, 0)
        builder.PrependInt8Slot(6, var.kind, 0)
        var_offsets.append(builder.EndObject())
    node_offsets = []
    for node in nodes:
        name = builder.CreateString(node.name)
        op_name = builder.CreateString(node.op_name)
        pairs = _vector_of_offsets(builder, [_int_pair(builder, a, b) for a, b in node.inputs])
        outs = _vector_of_offsets(builder, [builder.CreateString(o) for o in node.outputs])
        args = _node_args(builder, node)
        builder.StartObject(24)
        for slot, offset in args.items():
            builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
        builder.PrependInt32Slot(0, node.node_id, 0)
        builder.PrependUOffsetTRelativeSlot(1, name, 0)
        builder.PrependInt8Slot(2, 21, 0)
        builder.PrependUOffsetTRelativeSlot(6, pairs, 0)
        builder.PrependUOffsetTRelativeSlot(15, outs, 0)
        builder.PrependUOffsetTRelativeSlot(16, op_name, 0)
        node_offsets.append(builder.EndObject())
    variables_vec = _vector_of_offsets(builder, var_offsets)
    nodes_vec = _vector_of_offsets(builder, node_offsets)
    outputs_vec = _vector_of_offsets(builder, [_int_pair(builder, a, b) for a, b in outputs])
    ph_vec = _vector_of_offsets(builder, [builder.CreateString(p) for p in placeholders])
    tc = builder.CreateString(training_config) if training_config is not None else None
    builder.StartObject(9)
    builder.PrependInt64Slot(0, 1, 0)
    builder.PrependUOffsetTRelativeSlot(1, variables_vec, 0)
    builder.PrependUOffsetTRelativeSlot(2, nodes_vec, 0)
    builder.PrependUOffsetTRelativeSlot(3, outputs_vec, 0)
    builder.PrependUOffsetTRelativeSlot(5, ph_vec, 0)
    if tc is not None:
        builder.PrependUOffsetTRelativeSlot(7, tc, 0)
    root = builder.EndObject()
    builder.Finish(root)
    return bytes(builder.Output())


# -- Nd4j.write (DL4J) writer ---------------------------------------------------------------------

ND4J_TYPES = {
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "float16": "HALF",
    "int32": "INT",
    "int64": "LONG",
}


def java_utf(text: str) -> bytes:
    """``DataOutputStream.writeUTF`` for ASCII text."""
    raw = text.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def nd4j_write(array: npt.NDArray[Any], mode: str = "JAVACPP", order: str = "c") -> bytes:
    """``Nd4j.write(array, dos)``: shape-info buffer then data buffer, big-endian."""
    long_lengths = mode in ("LONG_SHAPE", "MIXED_DATA_TYPES")
    count_fmt = ">q" if long_lengths else ">i"
    info = _shape_info(array.shape, order)
    shape_type, shape_fmt = ("LONG", ">q") if long_lengths else ("INT", ">i")
    out = java_utf(mode) + struct.pack(count_fmt, len(info)) + java_utf(shape_type)
    out += b"".join(struct.pack(shape_fmt, v) for v in info)
    data = array.astype(array.dtype.newbyteorder(">")).tobytes(order="F" if order == "f" else "C")
    out += (
        java_utf(mode) + struct.pack(count_fmt, array.size) + java_utf(ND4J_TYPES[str(array.dtype)])
    )
    return out + data


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip archive with the given members (deflated)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def as_array(values: Sequence[float], dtype: str = "float32") -> npt.NDArray[Any]:
    """A 1-D numpy array."""
    return np.asarray(values, dtype=dtype)
