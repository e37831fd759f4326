"""Read a JSON manifest of models kept as data in spec/ (e.g. the ONNX Model Zoo's).

A manifest is a JSON list of objects. :func:`read_manifest` returns one
:class:`ManifestEntry` per object, knowing its index and the line it starts on, so that
every problem -- invalid JSON, a missing or mistyped field, a model the validator rejects --
is reported as ``spec/onnx_manifest.json:557: entry 37 (model 'DenseNet-121-12-int8',
opset_version 12): ...``
instead of at the line of the loop that read it. Entries are numbered from 0, as in
``jq '.[37]'``. The typed accessors (:meth:`ManifestEntry.text`, :meth:`~ManifestEntry.integer`,
...) raise :class:`ManifestError`, which the spec loader reports as that one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["ManifestEntry", "ManifestError", "read_manifest"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")


class ManifestError(Exception):
    """A problem with a manifest or one of its entries, at ``location``."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


@attrs.frozen
class ManifestEntry(Mapping[str, Any]):
    """One object of a manifest, with where it is (``file``, ``line``, ``index``)."""

    data: Mapping[str, Any]
    file: str
    line: int
    index: int
    label: str

    @property
    def location(self) -> str:
        """``spec/<manifest>:<line>: entry <n> (...)``."""
        return f"{self.file}:{self.line}: {self.label}"

    def __getitem__(self, key: str) -> Any:
        try:
            return self.data[key]
        except KeyError:
            raise ManifestError(self.location, f"missing field {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def _typed(self, key: str, kinds: tuple[type, ...], what: str) -> Any:
        value = self[key]
        if not isinstance(value, kinds) or isinstance(value, bool) != (bool in kinds):
            raise ManifestError(
                self.location, f"field {key!r} must be {what}, not {type(value).__name__}"
            )
        return value

    def text(self, key: str) -> str:
        """The string field ``key``."""
        value: str = self._typed(key, (str,), "a string")
        return value

    def integer(self, key: str) -> int:
        """The integer field ``key`` (not a bool)."""
        value: int = self._typed(key, (int,), "an integer")
        return value

    def object(self, key: str) -> ManifestEntry:
        """The object field ``key``, as an entry located (and labelled) like this one."""
        value = self._typed(key, (dict,), "an object")
        return ManifestEntry(value, self.file, self.line, self.index, self.label)

    def texts(self, key: str) -> tuple[str, ...]:
        """The list-of-strings field ``key``."""
        value = self._typed(key, (list,), "a list of strings")
        if not all(isinstance(item, str) for item in value):
            raise ManifestError(self.location, f"field {key!r} must be a list of strings")
        return tuple(value)


def _label(index: int, data: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    shown = [
        f"{f} {data[f]!r}" if isinstance(data[f], str) else f"{f} {data[f]}"
        for f in fields
        if f in data
    ]
    return f"entry {index}" + (f" ({', '.join(shown)})" if shown else "")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def read_manifest(path: Path, shown: str, label: tuple[str, ...] = ()) -> list[ManifestEntry]:
    """Parse ``path`` (shown in messages as ``shown``) into located entries.

    ``label``: the fields naming an entry in messages. Raises :class:`ManifestError` for an
    unreadable file, invalid JSON or a top level that is not a list of objects.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{shown}:1", f"cannot read manifest: {exc}") from None
    decoder = json.JSONDecoder()
    entries: list[ManifestEntry] = []

    def skip(at: int) -> int:
        match = _WHITESPACE.match(text, at)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    position = skip(0)
    if not text.startswith("[", position):
        raise ManifestError(f"{shown}:{_line(text, position)}", "a manifest must be a JSON list")
    position = skip(position + 1)
    line, counted = 1, 0
    closed = text.startswith("]", position)
    while not closed:
        try:
            data, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{shown}:{exc.lineno}", f"invalid JSON: {exc.msg}") from None
        line += text.count("\n", counted, position)
        counted = position
        index = len(entries)
        if not isinstance(data, dict):
            raise ManifestError(
                f"{shown}:{line}", f"entry {index} must be a JSON object, not {type(data).__name__}"
            )
        entries.append(ManifestEntry(data, shown, line, index, _label(index, data, label)))
        position = skip(end)
        if text.startswith(",", position):
            position = skip(position + 1)
        elif text.startswith("]", position):
            closed = True
        else:
            raise ManifestError(
                f"{shown}:{_line(text, position)}", "invalid JSON: expected ',' or ']'"
            )
    position = skip(position + 1)
    if position != len(text):
        raise ManifestError(f"{shown}:{_line(text, position)}", "invalid JSON: extra data")
    return entries
