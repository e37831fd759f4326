"""ND4J conventions shared by the SameDiff and DL4J loaders: shape info and data types.

ND4J describes an array by a "shape info" buffer ``[rank, dims..., strides..., extras, ews,
order]`` (``2 * rank + 4`` longs; ``order`` is ``ord('c')`` or ``ord('f')``). Both SameDiff's
``FlatArray.shape`` and DL4J's ``coefficients.bin`` use it.
"""

from __future__ import annotations

import math

import attrs

__all__ = [
    "MAX_EXTENT",
    "MAX_RANK",
    "NUMPY_DTYPES",
    "ShapeInfo",
    "ShapeInfoError",
    "parse_shape_info",
]

#: ND4J's own limit (``MAX_RANK`` in libnd4j).
MAX_RANK = 32
#: Largest product of an array's non-zero dimensions (2**48): far above any real array, far
#: below the 2**63 bytes past which numpy refuses a shape, even an empty one.
MAX_EXTENT = 2**48

#: ND4J data type name -> numpy dtype string without byte order. BFLOAT16 has no numpy dtype:
#: the loaders widen it to float32 (exactly: bfloat16 is the top half of a float32).
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "?",
    "HALF": "f2",
    "FLOAT": "f4",
    "DOUBLE": "f8",
    "BYTE": "i1",
    "INT8": "i1",
    "SHORT": "i2",
    "INT16": "i2",
    "INT": "i4",
    "INT32": "i4",
    "LONG": "i8",
    "INT64": "i8",
    "UBYTE": "u1",
    "UINT8": "u1",
    "UINT16": "u2",
    "UINT32": "u4",
    "UINT64": "u8",
    "BFLOAT16": "u2",
}


class ShapeInfoError(ValueError):
    """A shape-info buffer is inconsistent (bad rank, negative dim, unknown order)."""


@attrs.frozen
class ShapeInfo:
    """A decoded ND4J shape-info buffer."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    extras: int
    order: str  # "c" or "f"

    @property
    def length(self) -> int:
        """Number of elements (of the known dimensions, if some are -1)."""
        return math.prod(d for d in self.shape if d >= 0)


def parse_shape_info(
    values: tuple[int, ...] | list[int],
    *,
    max_elements: int | None,
    allow_unknown: bool = False,
) -> ShapeInfo:
    """Decode ``values`` (the whole shape-info buffer); ``max_elements`` bounds the length.

    ``allow_unknown`` accepts ``-1`` dimensions (a data-less array describing a placeholder,
    whose size is fixed at run time). ``max_elements=None`` skips the length bound, for arrays
    that describe a shape but hold no data (nothing is allocated for them).
    """
    if not values:
        raise ShapeInfoError("empty shape info")
    rank = int(values[0])
    if not 0 <= rank <= MAX_RANK:
        raise ShapeInfoError(f"rank {rank} outside 0..{MAX_RANK}")
    if len(values) < 2 * rank + 4:
        raise ShapeInfoError(
            f"rank {rank} needs {2 * rank + 4} shape-info values, got {len(values)}"
        )
    shape = tuple(int(v) for v in values[1 : 1 + rank])
    strides = tuple(int(v) for v in values[1 + rank : 1 + 2 * rank])
    extras, _ews, order_code = (int(v) for v in values[1 + 2 * rank : 4 + 2 * rank])
    if any(d < (-1 if allow_unknown else 0) for d in shape):
        raise ShapeInfoError(f"negative dimension in shape {list(shape)}")
    length = math.prod(d for d in shape if d >= 0)
    if max_elements is not None and length > max_elements:
        raise ShapeInfoError(
            f"shape {list(shape)} has {length} elements, more than the {max_elements} the "
            "file can hold"
        )
    # An empty array's dimensions are not bounded by its data, but numpy refuses a shape
    # whose non-zero dimensions multiply past its index range even when another one is 0.
    extent = math.prod(d for d in shape if d > 0)
    if max_elements is not None and extent > MAX_EXTENT:
        raise ShapeInfoError(
            f"shape {list(shape)} spans {extent} elements in its non-zero dimensions, more "
            f"than the {MAX_EXTENT} any array can have"
        )
    if order_code not in (ord("c"), ord("f")):
        raise ShapeInfoError(f"order {order_code} is neither 'c' (99) nor 'f' (102)")
    return ShapeInfo(shape=shape, strides=strides, extras=extras, order=chr(order_code))
