"""GGUF loader: metadata and tensors of a GGUF file through the ``gguf`` package's reader.

The reader memory-maps the file, so tensor data is not copied until used. It does not check
counts against the end of the file (past the end it reads empty arrays, so a forged array
count loops and allocates without end): :mod:`omnihub.loaders._gguf_check` walks the header
with every count bounded by the bytes left before the reader sees the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.errors import LoadError
from omnihub.loaders._gguf_check import GGUFHeaderError, check_gguf_header
from omnihub.loaders._sniff import reject_lfs_pointer

if TYPE_CHECKING:
    import numpy.typing as npt
    from gguf import GGUFReader

    from omnihub.catalog import ModelEntry

__all__ = ["GGUFModel", "GGUFTensor", "load_gguf", "read_gguf"]


@attrs.frozen(kw_only=True)
class GGUFTensor:
    """One tensor: its name, GGML type name, shape (GGUF order: fastest dimension first)."""

    name: str
    type: str  # a GGMLQuantizationType name, e.g. "F32", "Q4_0"
    shape: tuple[int, ...]
    data: npt.NDArray[Any] = attrs.field(eq=False, repr=False)  # memory-mapped, read-only


@attrs.frozen(kw_only=True)
class GGUFModel:
    """A GGUF file: key/value metadata and named tensors; ``reader`` is the gguf reader."""

    path: Path
    metadata: Mapping[str, Any] = attrs.field(eq=False)
    tensors: Mapping[str, GGUFTensor] = attrs.field(eq=False, repr=False)
    reader: GGUFReader = attrs.field(eq=False, repr=False)

    @property
    def architecture(self) -> str | None:
        """``general.architecture``, if present."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None


def _field_value(field: Any) -> Any:
    from gguf import GGUFValueType

    if not field.types:
        return None
    if field.types[0] == GGUFValueType.ARRAY:
        return [field.contents(i) for i in range(len(field.data))]
    return field.contents()


def read_gguf(path: Path) -> GGUFModel:
    """Open ``path``; :class:`LoadError` names the file and the problem."""
    from gguf import GGUFReader

    path = Path(path)
    reject_lfs_pointer(path, "GGUF")
    try:
        check_gguf_header(path)
    except GGUFHeaderError as exc:
        raise LoadError(f"{path}: not a readable GGUF file: {exc}") from exc
    except OSError as exc:
        raise LoadError(f"{path}: cannot read GGUF file: {exc}") from exc
    try:
        reader = GGUFReader(path, "r")
        metadata = {name: _field_value(field) for name, field in reader.fields.items()}
        tensors = {
            t.name: GGUFTensor(
                name=t.name,
                type=t.tensor_type.name,
                shape=tuple(int(d) for d in t.shape),
                data=t.data,
            )
            for t in reader.tensors
        }
    except (
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        OSError,
        UnicodeDecodeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as exc:
        raise LoadError(f"{path}: not a readable GGUF file: {exc}") from exc
    return GGUFModel(path=path, metadata=metadata, tensors=tensors, reader=reader)


def load_gguf(entry: ModelEntry, path: Path) -> GGUFModel:
    """The ``gguf`` format's loader."""
    return read_gguf(path)
