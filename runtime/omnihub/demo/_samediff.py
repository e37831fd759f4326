"""Write a small SameDiff ``FlatGraph`` (.fb) for the demo with ``flatbuffers.Builder``.

Field numbers follow ND4J's ``graph.fbs`` / ``variable.fbs`` / ``node.fbs`` / ``array.fbs``:

- ``FlatGraph``: 0 id, 1 variables, 2 nodes, 3 outputs, 5 placeholders.
- ``FlatVariable``: 0 id (IntPair), 1 name, 2 dtype, 3 shape, 4 ndarray, 6 variabletype.
- ``FlatArray``: 0 shape (ND4J shape info), 1 buffer, 2 dtype, 3 byteOrder.
- ``FlatNode``: 0 id, 1 name, 2 opType, 6 inputPaired, 15 outputNames, 16 opName.

Variables that no op produces (placeholders, weights) get ids ``(-k, 0)``; the output of
op ``n`` is ``(n, 0)``, and ops name their inputs by those pairs, as SameDiff does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_samediff_mlp"]

_FLOAT = 5  # DType.FLOAT
_BIG_ENDIAN = 1  # ByteOrder.BE
_VARIABLE, _ARRAY, _PLACEHOLDER = 0, 2, 3  # VarType
_CUSTOM = 21  # OpType.CUSTOM


def _longs(builder: Any, values: Sequence[int]) -> int:
    builder.StartVector(8, len(values), 8)
    for value in reversed(values):
        builder.PrependInt64(value)
    return int(builder.EndVector())


def _offsets(builder: Any, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return int(builder.EndVector())


def _pair(builder: Any, first: int, second: int = 0) -> int:
    builder.StartObject(2)
    builder.PrependInt32Slot(0, first, 0)
    builder.PrependInt32Slot(1, second, 0)
    return int(builder.EndObject())


def _shape_info(shape: Sequence[int]) -> list[int]:
    """ND4J shape info of a C-order array: rank, dims, strides, extras, ews, order."""
    strides = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return [len(shape), *shape, *reversed(strides), 0, 1, ord("c")]


def _array(builder: Any, shape: Sequence[int], values: Sequence[float]) -> int:
    info = _longs(builder, _shape_info(shape))
    buffer = builder.CreateByteVector(struct.pack(f">{len(values)}f", *values))
    builder.StartObject(4)
    builder.PrependUOffsetTRelativeSlot(0, info, 0)
    builder.PrependUOffsetTRelativeSlot(1, buffer, 0)
    builder.PrependInt8Slot(2, _FLOAT, 0)
    builder.PrependInt8Slot(3, _BIG_ENDIAN, 0)
    return int(builder.EndObject())


def _variable(
    builder: Any,
    name: str,
    var_id: int,
    *,
    kind: int,
    shape: Sequence[int],
    values: Sequence[float] | None = None,
) -> int:
    name_offset = builder.CreateString(name)
    array = _array(builder, shape, values) if values is not None else None
    shape_offset = _longs(builder, shape)
    id_offset = _pair(builder, var_id)
    builder.StartObject(10)
    builder.PrependUOffsetTRelativeSlot(0, id_offset, 0)
    builder.PrependUOffsetTRelativeSlot(1, name_offset, 0)
    builder.PrependInt8Slot(2, _FLOAT, 0)
    builder.PrependUOffsetTRelativeSlot(3, shape_offset, 0)
    if array is not None:
        builder.PrependUOffsetTRelativeSlot(4, array, 0)
    builder.PrependInt8Slot(6, kind, 0)
    return int(builder.EndObject())


def _node(builder: Any, node_id: int, op: str, inputs: Sequence[int], output: str) -> int:
    name = builder.CreateString(output)
    op_name = builder.CreateString(op)
    paired = _offsets(builder, [_pair(builder, i) for i in inputs])
    outputs = _offsets(builder, [builder.CreateString(output)])
    builder.StartObject(24)
    builder.PrependInt32Slot(0, node_id, 0)
    builder.PrependUOffsetTRelativeSlot(1, name, 0)
    builder.PrependInt8Slot(2, _CUSTOM, 0)
    builder.PrependUOffsetTRelativeSlot(6, paired, 0)
    builder.PrependUOffsetTRelativeSlot(15, outputs, 0)
    builder.PrependUOffsetTRelativeSlot(16, op_name, 0)
    return int(builder.EndObject())


def write_samediff_mlp(
    path: Path,
    layers: tuple[int, int, int],
    weights: Sequence[float],
    *,
    hidden_op: str = "relu",
) -> None:
    """Write ``input -> mmul -> add -> <hidden_op> -> mmul -> add -> softmax`` as a FlatGraph.

    ``weights`` holds w0 (in x hidden), b0, w1 (hidden x out), b1, flattened in C order;
    ``hidden_op`` is a SameDiff op taking one input (``relu``, ``tanh``, ``sigmoid``).
    """
    import flatbuffers

    n_in, hidden, n_out = layers
    shapes = {"w0": (n_in, hidden), "b0": (hidden,), "w1": (hidden, n_out), "b1": (n_out,)}
    builder = flatbuffers.Builder(4096)
    variables = [_variable(builder, "input", -1, kind=_PLACEHOLDER, shape=(-1, n_in))]
    ids = {"input": -1}
    offset = 0
    for number, (name, shape) in enumerate(shapes.items(), start=2):
        size = 1
        for dim in shape:
            size *= dim
        chunk = weights[offset : offset + size]
        offset += size
        variables.append(
            _variable(builder, name, -number, kind=_VARIABLE, shape=shape, values=chunk)
        )
        ids[name] = -number
    ops = [
        ("mmul", ("input", "w0"), "hidden_mmul", hidden),
        ("add", ("hidden_mmul", "b0"), "hidden_add", hidden),
        (hidden_op, ("hidden_add",), "hidden", hidden),
        ("mmul", ("hidden", "w1"), "logits_mmul", n_out),
        ("add", ("logits_mmul", "b1"), "logits", n_out),
        ("softmax", ("logits",), "probabilities", n_out),
    ]
    nodes = []
    for node_id, (op, inputs, output, width) in enumerate(ops, start=1):
        variables.append(_variable(builder, output, node_id, kind=_ARRAY, shape=(-1, width)))
        nodes.append(_node(builder, node_id, op, [ids[i] for i in inputs], output))
        ids[output] = node_id
    variables_vector = _offsets(builder, variables)
    nodes_vector = _offsets(builder, nodes)
    outputs_vector = _offsets(builder, [_pair(builder, ids["probabilities"])])
    placeholders = _offsets(builder, [builder.CreateString("input")])
    builder.StartObject(9)
    builder.PrependInt64Slot(0, 1, 0)
    builder.PrependUOffsetTRelativeSlot(1, variables_vector, 0)
    builder.PrependUOffsetTRelativeSlot(2, nodes_vector, 0)
    builder.PrependUOffsetTRelativeSlot(3, outputs_vector, 0)
    builder.PrependUOffsetTRelativeSlot(5, placeholders, 0)
    builder.Finish(builder.EndObject())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(builder.Output()))
