"""Rendering helpers for the command line: aligned tables, sizes, times, JSON."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import attrs

from omnihub.catalog import ModelEntry
from omnihub.cli._units import format_size, parse_size
from omnihub.search import qualified_name

__all__ = [
    "entry_to_json",
    "format_size",
    "format_time",
    "parse_size",
    "print_json",
    "print_table",
]


def format_time(timestamp: float | None) -> str:
    """A local ``YYYY-MM-DD HH:MM`` for a POSIX timestamp; ``-`` when unknown."""
    if timestamp is None:
        return "-"
    return (
        datetime.fromtimestamp(timestamp, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    )


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO | None = None
) -> None:
    """Print left-aligned columns separated by two spaces, with a header row (to stdout)."""
    stream = sys.stdout if out is None else out
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in (headers, *rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        stream.write(line.rstrip() + "\n")


def _json_value(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def entry_to_json(entry: ModelEntry) -> dict[str, Any]:
    """A JSON-ready dict of a catalogue entry, plus its ``qualified_name``."""
    data = {name: _json_value(value) for name, value in attrs.asdict(entry, recurse=False).items()}
    return {"qualified_name": qualified_name(entry), **data}


def print_json(data: object) -> None:
    """Print ``data`` as indented JSON (paths and enums as strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
