"""Safe reading of zip archives (DL4J ModelSerializer files): no slip, no links, no bombs.

Loaders never extract archives to disk; they read named members into memory. Even so, a
member list is checked as if it were going to be extracted, so that a hostile archive is
rejected as a whole, with a message naming the archive and the member:

- names that are absolute, contain ``..`` components, backslashes, drive letters or NUL
  (zip-slip), or that appear twice;
- symbolic links (Unix mode ``S_IFLNK`` in the external attributes);
- size bombs: a member whose declared size exceeds :data:`MAX_RATIO` times its compressed
  size (deflate cannot exceed ~1032:1, so only a forged header or a nested bomb gets there),
  or a total declared size over the caller's limit. Reads are capped at the declared size,
  so a header that under-declares cannot make us inflate more either.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from omnihub.errors import LoadError

__all__ = ["MAX_RATIO", "MAX_TOTAL_SIZE", "SafeZip"]

#: Largest accepted uncompressed/compressed ratio for one member (deflate's ceiling is ~1032).
MAX_RATIO = 1100
#: Default cap on the sum of declared uncompressed sizes (16 GiB).
MAX_TOTAL_SIZE = 16 * 1024**3
#: Members beyond this count are not plausible for a model archive.
MAX_MEMBERS = 10_000


def _unsafe_name(name: str) -> str | None:
    """Why ``name`` could escape an extraction directory, or None if it cannot."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' path component"
    return None


class SafeZip:
    """A validated, read-only zip archive; use as a context manager."""

    def __init__(self, path: Path, *, max_total_size: int = MAX_TOTAL_SIZE) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            ValueError,
            EOFError,
            NotImplementedError,  # a mangled "version needed" field
            RuntimeError,
        ) as exc:
            raise LoadError(f"{self.path}: not a readable zip archive: {exc}") from exc
        try:
            self._infos = self._validate(max_total_size)
        except BaseException:
            self._zip.close()
            raise

    def _validate(self, max_total_size: int) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise LoadError(f"{self.path}: {len(infos)} zip members, more than {MAX_MEMBERS}")
        by_name: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            reason = _unsafe_name(name)
            if reason is not None:
                raise LoadError(f"{self.path}: unsafe zip member name {name!r} ({reason})")
            if name in by_name:
                raise LoadError(f"{self.path}: zip member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise LoadError(f"{self.path}: zip member {name!r} is encrypted")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise LoadError(f"{self.path}: zip member {name!r} is a symbolic link")
            limit = max(info.compress_size, 1) * MAX_RATIO
            if info.file_size > limit:
                raise LoadError(
                    f"{self.path}: zip member {name!r} declares {info.file_size} bytes from "
                    f"{info.compress_size} compressed (ratio above {MAX_RATIO}: a zip bomb?)"
                )
            total += info.file_size
            if total > max_total_size:
                raise LoadError(
                    f"{self.path}: zip members declare more than {max_total_size} bytes in total"
                )
            by_name[name] = info
        return by_name

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying archive."""
        self._zip.close()

    def names(self) -> tuple[str, ...]:
        """Member names, in archive order (directories included)."""
        return tuple(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def read(self, name: str) -> bytes:
        """The content of member ``name``, checked against its declared size and CRC."""
        info = self._infos.get(name)
        if info is None:
            raise LoadError(f"{self.path}: zip member {name!r} is missing")
        try:
            with self._zip.open(info) as member:
                data = member.read(info.file_size + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            ValueError,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            raise LoadError(f"{self.path}: zip member {name!r} is corrupt: {exc}") from exc
        if len(data) != info.file_size:
            raise LoadError(
                f"{self.path}: zip member {name!r} holds {len(data)} bytes, its header "
                f"declares {info.file_size}"
            )
        return data
