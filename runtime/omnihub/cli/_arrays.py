"""Read the ``--input`` arrays and write the results of ``omnihub run`` (``.npy``/``.npz``).

``--input`` takes ``FILE.npy`` or ``NAME=FILE.npy``; a bad file is an :class:`InputError`
naming the path and what was expected. numpy is imported only when a file is read or written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from omnihub.errors import OmnihubError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["InputError", "InputSpec", "parse_input", "read_array", "write_results"]


class InputError(OmnihubError, ValueError):
    """An input given to ``omnihub run`` is unreadable or does not fit the model."""


class InputSpec(NamedTuple):
    """One ``--input``: an optional input/placeholder name and the ``.npy`` file."""

    name: str | None
    path: Path


def parse_input(text: str) -> InputSpec:
    """``FILE.npy`` or ``NAME=FILE.npy`` (an argparse ``type``).

    Text before the first ``=`` is a name when it is non-empty and holds no path separator,
    so ``dir/a=b.npy`` is a file; ``./a=b.npy`` too.
    """
    name, sep, rest = text.partition("=")
    if sep and name and "/" not in name and "\\" not in name:
        if not rest:
            raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy, got {text!r}")
        return InputSpec(name, Path(rest))
    if not text:
        raise argparse.ArgumentTypeError("expected FILE.npy or NAME=FILE.npy, got ''")
    return InputSpec(None, Path(text))


def read_array(path: Path) -> npt.NDArray[Any]:
    """The array stored in ``path`` (``.npy``; no pickles); :class:`InputError` otherwise."""
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise InputError(f"{path}: no such input file") from None
        if isinstance(exc, IsADirectoryError):
            raise InputError(f"{path}: is a directory, expected a .npy file") from None
        reason = " ".join(str(exc).split())
        raise InputError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise InputError(f"{path}: is an .npz archive, expected one array in a .npy file")
    if loaded.dtype.hasobject:  # pragma: no cover - allow_pickle=False refuses these first
        raise InputError(f"{path}: holds Python objects, expected a numeric array")
    return loaded


def write_results(path: Path, results: Sequence[tuple[str, npt.NDArray[Any]]]) -> str:
    """Save one result as ``.npy`` (or ``.npz`` if so named), several as ``.npz`` keyed by name.

    The file is written at exactly ``path`` (numpy would append a suffix); returns a line
    saying what was written.
    """
    import numpy as np

    names = ", ".join(name for name, _ in results)
    if len(results) > 1 and path.suffix != ".npz":
        raise InputError(
            f"{path}: the model computed {len(results)} outputs ({names}); "
            "give --output FILE.npz to save them all, keyed by name"
        )
    arrays: dict[str, Any] = dict(results)
    with open(path, "wb") as out:
        if path.suffix == ".npz":
            np.savez(out, **arrays)
        else:
            np.save(out, results[0][1])
    return f"wrote {names} to {path}"
