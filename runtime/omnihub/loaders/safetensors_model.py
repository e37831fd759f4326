"""SafeTensors loader: a read-only name -> numpy array mapping, plus the header metadata.

Reading goes through the ``safetensors`` package (numpy framework), whose Rust core bounds
the header and every tensor's offsets by the file size. Nothing is ever unpickled.

numpy has no dtype for some safetensors types (BF16, F8_E4M3, F8_E5M2, F8_E8M0, F6_*, F4),
and ``safetensors``' numpy framework fails on them. One such tensor must not make the whole
file unreadable: its bytes are read from the offsets the validated header gives and decoded
with ``ml_dtypes`` when it is installed and has the same layout (BF16 and the F8 types);
otherwise the tensor is kept as a :class:`RawTensor` (dtype, shape, raw little-endian bytes)
in :attr:`SafeTensorsWeights.undecoded`, and an :class:`UndecodedTensorWarning` names it.
"""

from __future__ import annotations

import json
import struct
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.errors import LoadError
from omnihub.loaders._sniff import reject_lfs_pointer

if TYPE_CHECKING:
    import numpy.typing as npt

    from omnihub.catalog import ModelEntry

__all__ = [
    "RawTensor",
    "SafeTensorsWeights",
    "UndecodedTensorWarning",
    "load_safetensors",
    "read_safetensors",
]

#: safetensors dtypes that ``safetensors.numpy`` turns into numpy arrays itself.
_NUMPY_TYPES = frozenset(
    {"BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "F64", "I64", "U64", "C64"}
)
#: safetensors dtype -> ``ml_dtypes`` type with the same one-element-per-item layout.
_ML_DTYPES = {
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
}


class UndecodedTensorWarning(UserWarning):
    """Some tensors have a dtype numpy cannot hold; they are kept as raw bytes."""


@attrs.frozen(kw_only=True)
class RawTensor:
    """A tensor whose dtype numpy lacks: its safetensors dtype, shape and stored bytes."""

    name: str
    dtype: str  # the safetensors dtype name, e.g. "F8_E4M3"
    shape: tuple[int, ...]
    data: bytes = attrs.field(repr=False)  # little-endian, as stored in the file


@attrs.frozen(eq=False)
class SafeTensorsWeights(Mapping[str, "npt.NDArray[Any]"]):
    """The tensors of one ``.safetensors`` file, by name (read-only arrays).

    ``undecoded`` holds the tensors no numpy dtype could represent (see the module
    docstring); they are not part of the mapping.
    """

    path: Path
    tensors: Mapping[str, npt.NDArray[Any]] = attrs.field(repr=False)
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    undecoded: Mapping[str, RawTensor] = attrs.field(factory=dict)

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


def _header(path: Path) -> dict[str, Any]:
    """The JSON header (already validated by ``safe_open``): tensor name -> its entry."""
    with open(path, "rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        header: dict[str, Any] = json.loads(stream.read(length))
    return header


def _raw_tensor(path: Path, name: str, header: Mapping[str, Any]) -> RawTensor:
    """Read one tensor's bytes from the offsets of the validated header."""
    with open(path, "rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        begin, end = header[name]["data_offsets"]
        stream.seek(8 + length + int(begin))
        data = stream.read(int(end) - int(begin))
    return RawTensor(
        name=name,
        dtype=str(header[name]["dtype"]),
        shape=tuple(int(d) for d in header[name]["shape"]),
        data=data,
    )


def _ml_dtype(dtype: str) -> Any:
    """The ``ml_dtypes`` type for ``dtype``, or None (not installed, no such type)."""
    name = _ML_DTYPES.get(dtype)
    if name is None:
        return None
    try:
        import ml_dtypes
    except ImportError:
        return None
    found = getattr(ml_dtypes, name, None)
    if found is None or (sys.byteorder != "little" and dtype == "BF16"):
        return None  # the file is little-endian; ml_dtypes types are native-endian
    return found


def _decode(raw: RawTensor, use_ml_dtypes: bool) -> npt.NDArray[Any] | None:
    import numpy as np

    kind = _ml_dtype(raw.dtype) if use_ml_dtypes else None
    if kind is None:
        return None
    array = np.frombuffer(raw.data, dtype=kind).reshape(raw.shape)
    array.flags.writeable = False
    return array


def _warn_undecoded(path: Path, undecoded: Mapping[str, RawTensor]) -> None:
    listed = ", ".join(f"{t.name!r} ({t.dtype} {list(t.shape)})" for t in undecoded.values())
    hint = ""
    if any(t.dtype in _ML_DTYPES for t in undecoded.values()):
        hint = "; install ml_dtypes to decode BF16/F8 tensors"
    warnings.warn(
        f"{path}: {len(undecoded)} tensor(s) with a dtype numpy lacks are kept as raw bytes "
        f"in .undecoded, not in the mapping: {listed}{hint}",
        UndecodedTensorWarning,
        stacklevel=3,
    )


def read_safetensors(path: Path, *, use_ml_dtypes: bool = True) -> SafeTensorsWeights:
    """Read every tensor of ``path``; :class:`LoadError` names the file and the problem.

    ``use_ml_dtypes=False`` keeps BF16/F8 tensors as raw bytes even when ``ml_dtypes`` is
    installed (e.g. to hand them to a framework with its own float8 types).
    """
    from safetensors import safe_open

    path = Path(path)
    reject_lfs_pointer(path, "SafeTensors")
    tensors: dict[str, npt.NDArray[Any]] = {}
    undecoded: dict[str, RawTensor] = {}
    header: dict[str, Any] | None = None
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            for name in handle.keys():  # noqa: SIM118 -- a safe_open handle, not a dict
                if handle.get_slice(name).get_dtype() not in _NUMPY_TYPES:
                    header = _header(path) if header is None else header
                    raw = _raw_tensor(path, name, header)
                    array = _decode(raw, use_ml_dtypes)
                    if array is None:
                        undecoded[name] = raw
                    else:
                        tensors[name] = array
                    continue
                array = handle.get_tensor(name)
                array.flags.writeable = False
                tensors[name] = array
    except Exception as exc:  # SafetensorError, TypeError, OSError, a header that changed
        raise LoadError(f"{path}: not a readable safetensors file: {exc}") from exc
    if undecoded:
        _warn_undecoded(path, undecoded)
    return SafeTensorsWeights(path=path, tensors=tensors, metadata=metadata, undecoded=undecoded)


def load_safetensors(entry: ModelEntry, path: Path) -> SafeTensorsWeights:
    """The ``safetensors`` format's loader."""
    return read_safetensors(path)
