"""SameDiff's enumerations (the FlatBuffers schema's DType, OpType and VarType), shared by the
loader and the converters without either importing the other."""

from __future__ import annotations

import enum

__all__ = ["DTYPE_NAMES", "OP_TYPE_NAMES", "VariableKind"]

#: ``sd.graph.DType`` values -> names (array.fbs).
DTYPE_NAMES: dict[int, str] = {
    0: "INHERIT",
    1: "BOOL",
    2: "FLOAT8",
    3: "HALF",
    4: "HALF2",
    5: "FLOAT",
    6: "DOUBLE",
    7: "INT8",
    8: "INT16",
    9: "INT32",
    10: "INT64",
    11: "UINT8",
    12: "UINT16",
    13: "UINT32",
    14: "UINT64",
    15: "QINT8",
    16: "QINT16",
    17: "BFLOAT16",
    50: "UTF8",
    51: "UTF16",
    52: "UTF32",
}

#: ``sd.graph.OpType`` values -> names (utils.fbs).
OP_TYPE_NAMES: dict[int, str] = {
    0: "TRANSFORM_FLOAT",
    1: "TRANSFORM_SAME",
    2: "TRANSFORM_BOOL",
    3: "TRANSFORM_STRICT",
    4: "TRANSFORM_ANY",
    5: "REDUCE_FLOAT",
    6: "REDUCE_SAME",
    7: "REDUCE_LONG",
    8: "REDUCE_BOOL",
    9: "INDEX_REDUCE",
    10: "SCALAR",
    11: "SCALAR_BOOL",
    12: "BROADCAST",
    13: "BROADCAST_BOOL",
    14: "PAIRWISE",
    15: "PAIRWISE_BOOL",
    16: "REDUCE_3",
    17: "SUMMARYSTATS",
    18: "SHAPE",
    19: "AGGREGATION",
    20: "RANDOM",
    21: "CUSTOM",
    22: "GRAPH",
    40: "VARIABLE",
    60: "BOOLEAN",
    119: "LOGIC",
    120: "UDF",
}


class VariableKind(str, enum.Enum):
    """``sd.graph.VarType``: the role of a variable in the graph."""

    VARIABLE = "VARIABLE"  # trainable parameter (weights)
    CONSTANT = "CONSTANT"
    ARRAY = "ARRAY"  # an op's output, computed at run time
    PLACEHOLDER = "PLACEHOLDER"  # an input fed at run time
    SEQUENCE = "SEQUENCE"  # added upstream after this schema; kept for forward compatibility

    def __str__(self) -> str:
        return self.value
