"""Pre-flight walk of a GGUF header: every count and length bounded before ``gguf`` reads it.

``gguf.GGUFReader`` slices its memory map without checking the end of the file: past the end
a read returns an empty array instead of failing. A forged element count in a metadata array
(``tokenizer.ggml.scores`` with a u64 count of 3e9..1e19) therefore makes it loop for that
many empty elements, growing memory by ~100 MB/s until ``MemoryError``; a string length past
the end silently yields a short string. This module walks the same structure (GGUF v2/v3:
magic, version, tensor count, key/value count, key/values, tensor infos) with every count
and length checked against the bytes left, and raises :class:`GGUFHeaderError` naming the
field and byte offset. Only when it passes does the reader see the file.

The reader also builds a Python object per metadata array element (measured with gguf 0.19:
~8 us and ~700 bytes each), so the elements of all arrays together are capped at
:data:`MAX_ARRAY_ELEMENTS`, about three times what the largest real tokenizers hold.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

__all__ = [
    "MAX_ARRAY_ELEMENTS",
    "MAX_ARRAY_NESTING",
    "MAX_TENSOR_DIMS",
    "GGUFHeaderError",
    "check_gguf_header",
]

#: Total metadata array elements accepted in one file (a 262k-token vocabulary with scores,
#: types and merges is ~1M).
MAX_ARRAY_ELEMENTS = 1 << 22
#: Arrays of arrays deeper than this are not plausible (and would recurse in the reader).
MAX_ARRAY_NESTING = 8
#: GGML uses at most 4 dimensions; the GGUF specification allows more "in the future".
MAX_TENSOR_DIMS = 32

_MAGIC = b"GGUF"
_STRING = 8
_ARRAY = 9
#: GGUF value type -> size in bytes of its scalars (GGUF specification, v2 and v3).
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
#: Smallest encoding of one value of a type (a string is at least its u64 length, an array
#: its u32 type and u64 count).
_MIN_SIZES = {**_SCALAR_SIZES, _STRING: 8, _ARRAY: 12}
#: The fewest bits any GGML tensor type spends per element is ~1.56 (IQ1_S); no tensor can
#: therefore hold more than 8 elements per byte of the file.
_MAX_ELEMENTS_PER_BYTE = 8


class GGUFHeaderError(ValueError):
    """The GGUF header claims more than the file holds, or is malformed."""


class _Cursor:
    """A bounds-checked reader over the mapped file, in the file's byte order."""

    def __init__(self, data: mmap.mmap | bytes, order: str) -> None:
        self.data = data
        self.size = len(data)
        self.pos = 0
        self.elements = 0
        self._structs = {code: struct.Struct(order + code) for code in "IQ"}

    @property
    def left(self) -> int:
        return self.size - self.pos

    def need(self, size: int, field: str) -> None:
        if size > self.left:
            raise GGUFHeaderError(
                f"{field} at offset {self.pos} needs {size} bytes, only {self.left} left"
            )

    def unpack(self, code: str, field: str) -> int:
        st = self._structs[code]
        self.need(st.size, field)
        (value,) = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return int(value)

    def count(self, field: str, each: int) -> int:
        """A u64 count of items of at least ``each`` bytes, bounded by the bytes left."""
        at = self.pos
        value = self.unpack("Q", field)
        if value * each > self.left:
            items = "bytes" if each == 1 else f"items of at least {each} bytes"
            raise GGUFHeaderError(
                f"{field} at offset {at} claims {value} {items}, only {self.left} bytes "
                "left in the file"
            )
        return value

    def string(self, field: str) -> None:
        length = self.count(f"{field} length", 1)
        self.pos += length

    def _strings(self, count: int, field: str) -> None:
        """Skip ``count`` strings (the bulk of a tokenizer: kept to a tight loop)."""
        unpack_from = self._structs["Q"].unpack_from
        data, pos, size = self.data, self.pos, self.size
        for index in range(count):
            if pos + 8 > size:
                self.pos = pos
                self.need(8, f"{field}[{index}] length")
            (length,) = unpack_from(data, pos)
            pos += 8 + length
            if pos > size:
                raise GGUFHeaderError(
                    f"{field}[{index}] at offset {pos - 8 - length} claims {length} bytes, "
                    f"only {size - (pos - length)} left in the file"
                )
        self.pos = pos

    def value(self, kind: int, field: str, depth: int = 0) -> None:
        if kind in _SCALAR_SIZES:
            self.need(_SCALAR_SIZES[kind], field)
            self.pos += _SCALAR_SIZES[kind]
        elif kind == _STRING:
            self.string(field)
        elif kind == _ARRAY:
            if depth >= MAX_ARRAY_NESTING:
                raise GGUFHeaderError(
                    f"{field} at offset {self.pos}: arrays nested deeper than {MAX_ARRAY_NESTING}"
                )
            item_at = self.pos
            item = self.unpack("I", f"{field} element type")
            if item not in _MIN_SIZES:
                raise GGUFHeaderError(
                    f"{field} element type {item} at offset {item_at} is not a GGUF value type"
                )
            count = self.count(f"{field} element count", _MIN_SIZES[item])
            self.elements += count
            if self.elements > MAX_ARRAY_ELEMENTS:
                raise GGUFHeaderError(
                    f"{field}: metadata arrays hold more than {MAX_ARRAY_ELEMENTS} elements "
                    "in total (a forged count?)"
                )
            if item in _SCALAR_SIZES:
                self.pos += count * _SCALAR_SIZES[item]
            elif item == _STRING:
                self._strings(count, field)
            else:
                for index in range(count):
                    self.value(item, f"{field}[{index}]", depth + 1)
        else:
            raise GGUFHeaderError(f"{field} at offset {self.pos}: unknown value type {kind}")


def _byte_order(data: mmap.mmap | bytes) -> str:
    if len(data) < 8 or data[:4] != _MAGIC:
        raise GGUFHeaderError("no GGUF magic: the file does not start with 'GGUF'")
    (version,) = struct.unpack_from("<I", data, 4)
    # Like gguf's reader: a version whose low half is zero was written in the other order.
    return ">" if version & 0xFFFF == 0 else "<"


def _walk(data: mmap.mmap | bytes) -> None:
    cur = _Cursor(data, _byte_order(data))
    cur.pos = 4
    version = cur.unpack("I", "version")
    if version not in (2, 3):
        raise GGUFHeaderError(f"version {version} is not 2 or 3")
    tensor_count = cur.unpack("Q", "tensor count")
    kv_count = cur.count("key/value count", 8 + 4 + 1)
    for index in range(kv_count):
        at = cur.pos
        key_length = cur.count(f"key {index} length", 1)
        key = bytes(data[cur.pos : cur.pos + key_length]).decode("utf-8", "replace")
        cur.pos += key_length
        field = f"metadata {key!r} (at offset {at})"
        cur.value(cur.unpack("I", f"{field} type"), field)
    if tensor_count * (8 + 4 + 4 + 8) > cur.left:
        raise GGUFHeaderError(
            f"tensor count {tensor_count} needs at least {tensor_count * 24} bytes of tensor "
            f"info, only {cur.left} left at offset {cur.pos}"
        )
    for index in range(tensor_count):
        name = f"tensor info {index} (at offset {cur.pos})"
        cur.string(f"{name} name")
        dims = cur.unpack("I", f"{name} dimension count")
        if dims > MAX_TENSOR_DIMS:
            raise GGUFHeaderError(f"{name}: {dims} dimensions, more than {MAX_TENSOR_DIMS}")
        limit = _MAX_ELEMENTS_PER_BYTE * cur.size
        shape = [cur.unpack("Q", f"{name} dimension") for _ in range(dims)]
        elements = 1
        for dim in shape:  # clamped: a forged shape cannot build a huge integer
            elements = min(elements * dim, limit + 1)
        if elements > limit or any(dim > limit for dim in shape):
            raise GGUFHeaderError(
                f"{name}: shape {shape[:8]} has more elements than a {cur.size}-byte file can store"
            )
        cur.unpack("I", f"{name} type")
        cur.unpack("Q", f"{name} data offset")


def check_gguf_header(path: Path) -> None:
    """Walk ``path``'s header; :class:`GGUFHeaderError` on a bound violation (OSError passes)."""
    with open(path, "rb") as stream:
        if stream.seek(0, 2) == 0:
            raise GGUFHeaderError("the file is empty")
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk(data)
