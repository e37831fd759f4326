"""Cheap validity checks of a downloaded file's format, run before a first-use hash is pinned.

An entry without a declared sha256 is trusted on first use: the hash of its first download is
recorded and every later copy must match it. A captive portal (200 OK and an HTML login page),
an empty 200 body or a Git LFS pointer must therefore never become that first download.
:func:`format_problem` reads only the file's head (and for ONNX its top-level protobuf field
tags, for SafeTensors its JSON header) and says what the file is if it is not plausibly a
model of the declared format. It is a plausibility check, not a parser: the loaders still
validate everything. Standard library only (``json``, ``struct``, ``zipfile`` when needed).
"""

from __future__ import annotations

import struct

# Not ``from typing import TYPE_CHECKING``: imported on the download path only, kept small.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

__all__ = ["format_problem"]

_HEAD = 4096
#: How every Git LFS pointer file starts: :data:`omnihub.loaders._sniff.LFS_POINTER_PREFIX`, not
#: imported because ``omnihub.loaders`` pulls in the loader registry (~80 ms).
_LFS_POINTER = b"version https://git-lfs"
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<script")
#: A SafeTensors JSON header larger than this is not read (the format caps it at 100 MB).
_MAX_SAFETENSORS_HEADER = 100_000_000
#: ONNX ModelProto's graph and opset_import fields: every model has both.
_ONNX_REQUIRED_FIELDS = frozenset({7, 8})
#: Top-level protobuf fields walked before the ONNX check gives up and accepts.
_MAX_ONNX_FIELDS = 100_000


def format_problem(path: Path, fmt: str) -> str | None:
    """What ``path`` is instead of a ``fmt`` model (``"an HTML page ..."``), or None if its
    structure is plausible. ``fmt`` is a :class:`omnihub._enums.Format` value; ``raw`` and
    unknown formats get only the checks every format shares (empty, HTML, LFS pointer)."""
    with open(path, "rb") as stream:
        head = stream.read(_HEAD)
        size = stream.seek(0, 2)
        generic = _generic_problem(head)
        if generic is not None:
            return generic
        check = _CHECKS.get(str(fmt))
        return None if check is None else check(stream, head, size)


def _generic_problem(head: bytes) -> str | None:
    if not head:
        return "an empty body (0 bytes)"
    if head.startswith(_LFS_POINTER):
        return "a Git LFS pointer file (the server returned the pointer, not the file)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_HTML_STARTS):
        return "an HTML page (a captive portal, login or error page?)"
    return None


def _flatbuffers(stream: BinaryIO, head: bytes, size: int) -> str | None:
    """A FlatBuffers root: offset to a table whose vtable lies inside the file (or one of
    SameDiff's containers, which its loader recognises and explains)."""
    what = "not a FlatBuffers file (SameDiff FlatGraph)"
    if head.startswith((b"SDNB", b"PK\x03\x04")):  # the .sdnb and .sdz containers
        return None
    if size < 12 or len(head) < 8:
        return f"{what}: only {size} bytes"
    (root,) = struct.unpack_from("<I", head, 0)
    if root < 4 or root % 4 or root + 4 > size:
        return f"{what}: root offset {root} outside the {size}-byte file"
    stream.seek(root)
    (back,) = struct.unpack("<i", stream.read(4))
    vtable = root - back
    if vtable < 0 or vtable + 4 > size:
        return f"{what}: vtable offset {vtable} outside the file"
    stream.seek(vtable)
    vt_size, table_size = struct.unpack("<HH", stream.read(4))
    if vt_size < 4 or vt_size % 2 or vtable + vt_size > size or root + table_size > size:
        return f"{what}: malformed root table"
    return None


def _zip(stream: BinaryIO, head: bytes, size: int) -> str | None:
    """A zip archive (DL4J ModelSerializer): local header magic and a central directory."""
    import zipfile

    if not head.startswith(b"PK\x03\x04"):
        return "not a zip archive (DL4J ModelSerializer): no PK\\x03\\x04 signature"
    stream.seek(0)
    if not zipfile.is_zipfile(stream):
        return "a truncated or damaged zip archive (no end of central directory)"
    return None


def _varint(stream: BinaryIO) -> int | None:
    value = shift = 0
    while shift < 70:
        byte = stream.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def _onnx(stream: BinaryIO, head: bytes, size: int) -> str | None:
    """An ONNX ModelProto: top-level protobuf fields that tile the file, among them a graph
    and an opset_import."""
    what = "not an ONNX protobuf (ModelProto)"
    stream.seek(0)
    seen: set[int] = set()
    for _ in range(_MAX_ONNX_FIELDS):
        at = stream.tell()
        if at == size:
            missing = _ONNX_REQUIRED_FIELDS - seen
            return f"{what}: no graph or opset_import field" if missing else None
        tag = _varint(stream)
        if tag is None or not 1 <= tag >> 3 <= 64:
            return f"{what}: bad field tag at byte {at}"
        wire = tag & 7
        if wire == 0:
            skip = 0 if _varint(stream) is not None else -1
        elif wire in (1, 5):
            skip = 8 if wire == 1 else 4
        elif wire == 2:
            length = _varint(stream)
            skip = -1 if length is None else length
            seen.add(tag >> 3)
        else:
            return f"{what}: wire type {wire} at byte {at}"
        if skip < 0 or stream.tell() + skip > size:
            return f"{what}: field at byte {at} runs past the end of the file"
        stream.seek(skip, 1)
    return None


def _gguf(stream: BinaryIO, head: bytes, size: int) -> str | None:
    if not head.startswith(b"GGUF") or len(head) < 8:
        return "not a GGUF file: no GGUF magic"
    (version,) = struct.unpack_from("<I", head, 4)
    if version not in (1, 2, 3):
        return f"not a GGUF file: version {version}"
    return None


def _safetensors(stream: BinaryIO, head: bytes, size: int) -> str | None:
    """A SafeTensors file: a JSON header whose tensors' byte ranges fit the file."""
    import json

    what = "not a SafeTensors file"
    if len(head) < 10:
        return f"{what}: only {size} bytes"
    (length,) = struct.unpack_from("<Q", head, 0)
    if not 2 <= length <= min(size - 8, _MAX_SAFETENSORS_HEADER):
        return f"{what}: header length {length} does not fit the {size}-byte file"
    stream.seek(8)
    try:
        header = json.loads(stream.read(length))
    except ValueError:
        return f"{what}: the header is not JSON"
    if not isinstance(header, dict):
        return f"{what}: the header is not a JSON object"
    data = size - 8 - length
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data
        ):
            return f"{what}: tensor {name!r} has no valid data_offsets within the file"
    return None


_CHECKS = {
    "samediff": _flatbuffers,
    "dl4j": _zip,
    "onnx": _onnx,
    "gguf": _gguf,
    "safetensors": _safetensors,
}
