"""A bounds-checked, typed view of FlatBuffers tables on top of ``flatbuffers.table.Table``.

The ``flatbuffers`` Python runtime trusts its input: a forged offset makes it read outside the
buffer (``struct`` then raises, or a negative offset silently wraps around) and a forged
vector length makes generated readers loop billions of times. Python has no FlatBuffers
verifier, so every position, vtable, string and vector is checked here against the buffer
length *before* ``Table`` reads it, and every failure raises :class:`FlatError` naming the
field and byte offset. The schema-specific code (``samediff.py``) only says which slot holds
what.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flatbuffers.table import Table as _FbTable

__all__ = ["FlatError", "FlatTable", "root_table"]

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")


class FlatError(ValueError):
    """The buffer is not a well-formed FlatBuffer for the expected schema."""


def _check_range(buf_len: int, pos: int, size: int, what: str) -> None:
    if pos < 0 or size < 0 or pos + size > buf_len:
        raise FlatError(
            f"{what}: {size} bytes at offset {pos} lie outside the {buf_len}-byte buffer"
        )


#: How many times over a buffer's size its strings and vectors may be read in total.
READ_AMPLIFICATION = 4


class _Budget:
    """Bytes of strings and vectors materialised so far, capped for the whole buffer.

    FlatBuffers lets many fields point at one string or vector; a forged file can use that to
    make a reader copy one large blob millions of times. Real writers share little or
    nothing, so ``READ_AMPLIFICATION`` times the buffer size (plus slack) is never reached by
    a genuine file, and memory stays proportional to the input.
    """

    __slots__ = ("left",)

    def __init__(self, buf_len: int) -> None:
        self.left = READ_AMPLIFICATION * buf_len + (1 << 20)

    def spend(self, size: int, what: str) -> None:
        self.left -= size
        if self.left < 0:
            raise FlatError(
                f"{what}: fields share data to read more than {READ_AMPLIFICATION}x the "
                "buffer size (a decompression-bomb-like forged file?)"
            )


def root_table(buf: bytes, what: str) -> FlatTable:
    """The root table of ``buf`` (a FlatBuffer without size prefix)."""
    _check_range(len(buf), 0, 4, f"{what} root offset")
    (offset,) = _U32.unpack_from(buf, 0)
    return FlatTable(buf, offset, what, _Budget(len(buf)))


class FlatTable:
    """One FlatBuffers table whose vtable has been validated; field readers check bounds."""

    __slots__ = ("_budget", "_buf", "_len", "_table", "_vt_len", "_vtable", "pos", "what")

    def __init__(self, buf: bytes, pos: int, what: str, budget: _Budget) -> None:
        from flatbuffers.table import Table

        size = len(buf)
        _check_range(size, pos, 4, f"{what} table")
        (soffset,) = _I32.unpack_from(buf, pos)
        vtable = pos - soffset
        _check_range(size, vtable, 4, f"{what} vtable")
        vt_len, table_len = _U16.unpack_from(buf, vtable)[0], _U16.unpack_from(buf, vtable + 2)[0]
        if vt_len < 4 or vt_len % 2:
            raise FlatError(f"{what}: vtable at offset {vtable} has invalid length {vt_len}")
        _check_range(size, vtable, vt_len, f"{what} vtable")
        _check_range(size, pos, max(table_len, 4), f"{what} table body")
        self._budget = budget
        budget.spend(max(table_len, 4), what)
        self._buf = buf
        self._len = size
        self._table: _FbTable = Table(buf, pos)
        self._vtable = vtable
        self._vt_len = vt_len
        self.pos = pos
        self.what = what

    # -- field location ----------------------------------------------------------------------

    def _field(self, slot: int, size: int, name: str) -> int | None:
        """Absolute position of field number ``slot`` (None if absent), ``size`` bytes checked."""
        vt_offset = 4 + 2 * slot
        if vt_offset + 2 > self._vt_len:
            return None
        off = self._table.Offset(vt_offset)
        if off == 0:
            return None
        pos = self.pos + int(off)
        _check_range(self._len, pos, size, f"{self.what}.{name}")
        return pos

    def _deref(self, pos: int, name: str) -> int:
        """Follow the uoffset stored at ``pos``; the target's first 4 bytes are checked."""
        (rel,) = _U32.unpack_from(self._buf, pos)
        target = pos + int(rel)
        _check_range(self._len, target, 4, f"{self.what}.{name}")
        return target

    def _vector(self, slot: int, elem_size: int, name: str) -> tuple[int, int] | None:
        """``(start, count)`` of a vector field, with ``count * elem_size`` bytes checked."""
        pos = self._field(slot, 4, name)
        if pos is None:
            return None
        vec = self._deref(pos, name)
        count = int(self._table.Get(_uoffset_flags(), vec))
        start = vec + 4
        if count * elem_size > self._len - start:
            raise FlatError(
                f"{self.what}.{name}: vector at offset {vec} claims {count} elements of "
                f"{elem_size} bytes, past the end of the {self._len}-byte buffer"
            )
        return start, count

    # -- scalars -----------------------------------------------------------------------------

    def scalar(self, slot: int, fmt: str, default: int | float, name: str) -> int | float:
        """A scalar field (``fmt`` is a little-endian ``struct`` code such as ``"<q"``)."""
        size = struct.calcsize(fmt)
        pos = self._field(slot, size, name)
        if pos is None:
            return default
        value: int | float = struct.unpack_from(fmt, self._buf, pos)[0]
        return value

    def integer(self, slot: int, fmt: str, name: str, default: int = 0) -> int:
        """An integer scalar field."""
        return int(self.scalar(slot, fmt, default, name))

    # -- strings -----------------------------------------------------------------------------

    def _string_at(self, pos: int, name: str) -> str:
        target = self._deref(pos, name)
        (length,) = _U32.unpack_from(self._buf, target)
        _check_range(self._len, target + 4, length, f"{self.what}.{name} string")
        self._budget.spend(length, f"{self.what}.{name}")
        raw = self._buf[target + 4 : target + 4 + length]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlatError(f"{self.what}.{name}: string at offset {target} is not UTF-8") from exc

    def string(self, slot: int, name: str) -> str | None:
        """A string field, or None when absent."""
        pos = self._field(slot, 4, name)
        return None if pos is None else self._string_at(pos, name)

    def strings(self, slot: int, name: str) -> tuple[str, ...]:
        """A ``[string]`` field (empty when absent)."""
        vec = self._vector(slot, 4, name)
        if vec is None:
            return ()
        start, count = vec
        return tuple(self._string_at(start + 4 * i, f"{name}[{i}]") for i in range(count))

    # -- vectors of scalars ------------------------------------------------------------------

    def scalars(self, slot: int, code: str, name: str) -> tuple[int | float | bool, ...]:
        """A vector of scalars; ``code`` is a ``struct`` code without byte order, e.g. ``"q"``."""
        size = struct.calcsize("<" + code)
        vec = self._vector(slot, size, name)
        if vec is None:
            return ()
        start, count = vec
        self._budget.spend(count * size, f"{self.what}.{name}")
        return struct.unpack_from(f"<{count}{code}", self._buf, start)

    def ints(self, slot: int, code: str, name: str) -> tuple[int, ...]:
        """A vector of integers."""
        return tuple(int(v) for v in self.scalars(slot, code, name))

    def byte_vector(self, slot: int, name: str) -> tuple[int, bytes] | None:
        """``(offset, bytes)`` of a ``[byte]``/``[ubyte]`` field, or None when absent."""
        vec = self._vector(slot, 1, name)
        if vec is None:
            return None
        start, count = vec
        self._budget.spend(count, f"{self.what}.{name}")
        return start, self._buf[start : start + count]

    # -- nested tables -----------------------------------------------------------------------

    def table(self, slot: int, name: str) -> FlatTable | None:
        """A table field, or None when absent."""
        pos = self._field(slot, 4, name)
        if pos is None:
            return None
        return FlatTable(self._buf, self._deref(pos, name), f"{self.what}.{name}", self._budget)

    def tables(self, slot: int, name: str) -> tuple[FlatTable, ...]:
        """A ``[Table]`` field (empty when absent)."""
        vec = self._vector(slot, 4, name)
        if vec is None:
            return ()
        start, count = vec
        return tuple(
            FlatTable(
                self._buf,
                self._deref(start + 4 * i, f"{name}[{i}]"),
                f"{self.what}.{name}[{i}]",
                self._budget,
            )
            for i in range(count)
        )


def _uoffset_flags() -> object:
    from flatbuffers import number_types

    return number_types.UOffsetTFlags
