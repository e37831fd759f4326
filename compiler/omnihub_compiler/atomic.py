"""Replace one file atomically, never through a planted symlink or a predictable name.

The new content goes to a fresh ``tempfile.mkstemp`` file (``O_CREAT | O_EXCL``, random
name) beside the target and is moved over it with one ``os.replace``: readers see the old
file or the new one, never a partial one, and a symlink planted at a guessable temporary
name cannot redirect the write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, content: bytes) -> None:
    """Atomically make ``path`` hold ``content`` (creating its directory if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
