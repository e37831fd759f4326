"""Reading ``Nd4j.write`` output: Java ``DataOutputStream`` primitives and ND4J data buffers.

``Nd4j.write(array, DataOutputStream)`` writes the shape-info buffer, then the data buffer.
Each buffer is: ``writeUTF(allocationMode)``, the element count (``int`` for HEAP, DIRECT and
JAVACPP; ``long`` for LONG_SHAPE and MIXED_DATA_TYPES), ``writeUTF(dataType)``, then the
elements, all big-endian. Every length read here is checked against the bytes left before
anything is allocated, and errors name the field and byte offset.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.loaders._nd4j import NUMPY_DTYPES, ShapeInfo, ShapeInfoError, parse_shape_info

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["JavaStream", "Nd4jArray", "StreamError", "read_nd4j_array"]

_INT_LENGTH_MODES = frozenset({"HEAP", "DIRECT", "JAVACPP"})
_LONG_LENGTH_MODES = frozenset({"LONG_SHAPE", "MIXED_DATA_TYPES"})


class StreamError(ValueError):
    """The stream does not hold what the format says it should."""


class JavaStream:
    """A cursor over bytes written by ``java.io.DataOutputStream`` (big-endian)."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def take(self, size: int, field: str) -> bytes:
        """The next ``size`` bytes, or :class:`StreamError` if the stream is shorter."""
        return bytes(self.view(size, field))

    def view(self, size: int, field: str) -> memoryview:
        """The next ``size`` bytes as a zero-copy view (large buffers, i.e. weights, are not
        copied before they are decoded), or :class:`StreamError` if the stream is shorter."""
        if size < 0 or size > self.remaining:
            raise StreamError(
                f"{self.what}: {field} at offset {self.pos} needs {size} bytes, "
                f"{self.remaining} left"
            )
        chunk = memoryview(self.data)[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str, field: str) -> Any:
        """One big-endian value (``fmt`` without byte order, e.g. ``"i"``)."""
        st = struct.Struct(">" + fmt)
        return st.unpack(self.take(st.size, field))[0]

    def utf(self, field: str) -> str:
        """A ``writeUTF`` string (2-byte length, then modified UTF-8)."""
        start = self.pos
        length = self.unpack("H", field)
        raw = self.take(length, field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StreamError(f"{self.what}: {field} at offset {start} is not UTF-8") from exc


@attrs.frozen
class Nd4jArray:
    """An array read from an ``Nd4j.write`` stream, with how it was stored."""

    array: npt.NDArray[Any] = attrs.field(eq=False, repr=False)
    shape_info: ShapeInfo
    allocation_mode: str
    data_type: str


def _read_buffer(stream: JavaStream, name: str) -> tuple[str, str, int, int]:
    """Read a buffer header; return (mode, dtype, count, data offset), data bounds-checked."""
    mode_at = stream.pos
    mode = stream.utf(f"{name} allocation mode")
    if mode in _INT_LENGTH_MODES:
        count = int(stream.unpack("i", f"{name} element count"))
    elif mode in _LONG_LENGTH_MODES:
        count = int(stream.unpack("q", f"{name} element count"))
    else:
        raise StreamError(
            f"{stream.what}: {name} allocation mode {mode!r} at offset {mode_at} is not one of "
            "HEAP, DIRECT, JAVACPP, LONG_SHAPE, MIXED_DATA_TYPES"
        )
    if count < 0:
        raise StreamError(f"{stream.what}: {name} element count {count} is negative")
    type_at = stream.pos
    dtype = stream.utf(f"{name} data type")
    code = NUMPY_DTYPES.get(dtype)
    if code is None:
        raise StreamError(
            f"{stream.what}: unsupported {name} data type {dtype!r} at offset {type_at}"
        )
    itemsize = 1 if code == "?" else int(code[1:])
    if count * itemsize > stream.remaining:
        raise StreamError(
            f"{stream.what}: {name} claims {count} {dtype} elements at offset {stream.pos}, "
            f"only {stream.remaining} bytes left"
        )
    return mode, dtype, count, stream.pos


def read_nd4j_array(stream: JavaStream) -> Nd4jArray:
    """Read one ``Nd4j.write`` array from ``stream`` (advancing it past the array)."""
    import numpy as np

    _mode, shape_type, count, _start = _read_buffer(stream, "shape info")
    if shape_type not in ("INT", "LONG"):
        raise StreamError(f"{stream.what}: shape info has data type {shape_type}, not INT/LONG")
    fmt = "i" if shape_type == "INT" else "q"
    raw = stream.take(count * struct.calcsize(fmt), "shape info")
    values = struct.unpack(f">{count}{fmt}", raw)
    try:
        info = parse_shape_info(values, max_elements=len(stream.data))
    except ShapeInfoError as exc:
        raise StreamError(f"{stream.what}: shape info {list(values)}: {exc}") from exc

    mode, dtype, count, start = _read_buffer(stream, "data")
    if count < info.length:
        raise StreamError(
            f"{stream.what}: data buffer at offset {start} holds {count} elements, shape "
            f"{list(info.shape)} needs {info.length}"
        )
    big = np.dtype(NUMPY_DTYPES[dtype]).newbyteorder(">")
    # A view, then one copy into native byte order: the weights are copied once, not three
    # times (a bytes slice, then astype), which mattered for 100 MB+ coefficient files.
    data = stream.view(count * big.itemsize, "data")
    flat = np.frombuffer(data, dtype=big)[: info.length]
    if dtype == "BFLOAT16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    native = flat.astype(flat.dtype.newbyteorder("="), copy=True)
    array = native.reshape(info.shape, order="F" if info.order == "f" else "C")
    array.flags.writeable = False
    return Nd4jArray(array=array, shape_info=info, allocation_mode=mode, data_type=dtype)
