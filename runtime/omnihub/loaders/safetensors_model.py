"""SafeTensors loader: a read-only name -> numpy array mapping, plus the header metadata.

Reading goes through the ``safetensors`` package (numpy framework), whose Rust core bounds
the header and every tensor's offsets by the file size. Nothing is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.errors import LoadError

if TYPE_CHECKING:
    import numpy.typing as npt

    from omnihub.catalog import ModelEntry

__all__ = ["SafeTensorsWeights", "load_safetensors", "read_safetensors"]


@attrs.frozen(eq=False)
class SafeTensorsWeights(Mapping[str, "npt.NDArray[Any]"]):
    """The tensors of one ``.safetensors`` file, by name (read-only arrays)."""

    path: Path
    tensors: Mapping[str, npt.NDArray[Any]] = attrs.field(repr=False)
    metadata: Mapping[str, str] = attrs.field(factory=dict)

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


def read_safetensors(path: Path) -> SafeTensorsWeights:
    """Read every tensor of ``path``; :class:`LoadError` names the file and the problem."""
    from safetensors import safe_open

    path = Path(path)
    tensors: dict[str, npt.NDArray[Any]] = {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            for name in handle.keys():  # noqa: SIM118 -- a safe_open handle, not a dict
                array = handle.get_tensor(name)
                array.flags.writeable = False
                tensors[name] = array
    except Exception as exc:  # SafetensorError, TypeError for dtypes numpy lacks, OSError
        raise LoadError(f"{path}: not a readable safetensors file: {exc}") from exc
    return SafeTensorsWeights(path=path, tensors=tensors, metadata=metadata)


def load_safetensors(entry: ModelEntry, path: Path) -> SafeTensorsWeights:
    """The ``safetensors`` format's loader."""
    return read_safetensors(path)
