"""Byte sizes for people: parse ``--max-size 10GB`` and print ``1.5 MiB``.

Kept free of third-party imports: the argument parser uses :func:`parse_size`.
"""

from __future__ import annotations

import math

__all__ = ["format_size", "parse_size"]

#: The largest size accepted (2**63 - 1 bytes, what a file system can count).
_MAX_SIZE = 2**63 - 1

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def parse_size(text: str) -> int:
    """Parse ``"500MB"``, ``"1.5GiB"``, ``"10g"`` or ``"1234"`` into a number of bytes.

    Decimal units (KB, MB, GB, TB; K/M/G/T) are powers of 1000, binary ones (KiB, MiB,
    GiB, TiB) powers of 1024. Raises :class:`ValueError` naming the text otherwise.
    """
    stripped = text.strip().replace(" ", "").replace("_", "")
    number = stripped.rstrip("KMGTBIkmgtbi")
    unit = stripped[len(number) :].upper()
    multiplier = _UNITS.get(unit)
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    size = value * (multiplier or 0)
    if multiplier is None or not math.isfinite(size) or not 0 <= size <= _MAX_SIZE:
        raise ValueError(
            f"invalid size {text!r}: expected a number of bytes from 0 to 8 EiB with an "
            "optional unit (KB, MB, GB, TB or KiB, MiB, GiB, TiB), e.g. 500MB"
        )
    return round(size)


def format_size(size: int | None) -> str:
    """Human-readable binary size: ``1.5 MiB``; ``-`` when unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
