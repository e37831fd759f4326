"""The cache as a whole (``omnihub cache ...``, ``omnihub verify``): is the home usable, what
is in it, and removing what is no longer needed.

:func:`scan` lists model files, :func:`verify` rehashes them
(:func:`omnihub.cache.rehash_and_repair` each), :func:`remove` deletes files with their
sidecars, :func:`prune` drops leftovers and, within a budget, the least recently used models.
Nothing here deletes a lock file or touches a file whose lock is held, so it never disturbs a
download in progress.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import attrs

from omnihub import layout
from omnihub.cache import Verification, read_record, rehash_and_repair
from omnihub.locking import target_lock, try_target_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "CachedFile",
    "Pruned",
    "check_directory",
    "directory_problem",
    "prune",
    "remove",
    "scan",
    "verify",
]


@attrs.frozen
class CachedFile:
    """One model file in the cache, as :func:`scan` found it.

    ``state``: ``"ok"`` (record matches size and mtime), ``"unrecorded"`` (no record yet,
    e.g. written by DL4J), ``"changed"`` (size or mtime differ from the record).
    """

    path: Path
    framework: str
    file: str
    size: int
    sha256: str | None
    state: str
    last_used: float


@attrs.frozen
class Pruned:
    """A file :func:`prune` removed (or would remove, in a dry run), and why."""

    path: Path
    reason: str
    size: int


def directory_problem(directory: Path) -> str | None:
    """Why ``directory`` can be neither used nor created as a directory, or None.

    Looks at ``directory`` and then its ancestors up to an existing one: a file in the way, a
    dangling symlink, a symlink loop. A missing directory under good ancestors is fine (it is
    created on first download); permission errors are left to the operation that meets them.
    """
    for place in (directory, *directory.parents):
        try:
            st = os.stat(place)
        except FileNotFoundError:
            if os.path.islink(place):
                return f"{place} is a symlink to {os.readlink(place)}, which does not exist"
            continue
        except NotADirectoryError:
            continue  # an ancestor is a file: found further up
        except OSError as exc:
            return f"{place} is a symlink loop" if exc.errno == errno.ELOOP else None
        if stat.S_ISDIR(st.st_mode):
            return None
        kind = "a file" if stat.S_ISREG(st.st_mode) else "something else"
        return f"{place} is {kind}, not a directory"
    return None


def check_directory(directory: Path, *, home: Path, source: str = "OMNIHUB_HOME") -> None:
    """Raise :class:`~omnihub.errors.CacheDirectoryError` naming the home and its setting
    (``source``) if :func:`directory_problem` finds one for ``directory``."""
    problem = directory_problem(directory)
    if problem is not None:
        from omnihub.errors import CacheDirectoryError

        raise CacheDirectoryError(
            f"cannot use the cache directory {home} ({source}): {problem}; expected a "
            "directory, or a path where one can be created"
        )


def _home(home: Path | str | None) -> Path:
    if home is not None:
        return Path(home).expanduser()
    from omnihub.config import resolve

    return resolve().home


def _walk(home: Path) -> Iterator[tuple[str, Path, str]]:
    """``(framework, path, relative file)`` for every regular file under the home.

    A missing home is an empty cache; a broken one raises
    :class:`~omnihub.errors.CacheDirectoryError` (never "empty"). A framework directory that
    is a symlink (DL4J users move ``samediff`` to a bigger disk) is followed only when the
    current user or root owns the link: one planted by another user of a shared home must
    not make ``prune`` delete files elsewhere.
    """
    check_directory(home, home=home)
    if not home.is_dir():
        return
    me = (os.geteuid(), 0) if hasattr(os, "geteuid") else None
    for fw_dir in sorted(home.iterdir()):
        if fw_dir.name.startswith(".") or not fw_dir.is_dir():
            continue
        if me is not None and fw_dir.is_symlink() and fw_dir.lstat().st_uid not in me:
            continue
        for root, dirs, files in os.walk(fw_dir):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                if not path.is_symlink():
                    yield fw_dir.name, path, path.relative_to(fw_dir).as_posix()


def _describe(path: Path, framework: str, file: str) -> CachedFile:
    st = path.stat()
    record = read_record(path)
    if record is None:
        return CachedFile(path, framework, file, st.st_size, None, "unrecorded", st.st_mtime)
    state = "ok" if (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns) else "changed"
    try:
        last_used = max(layout.record_path(path).stat().st_mtime, st.st_mtime)
    except OSError:
        last_used = st.st_mtime
    return CachedFile(path, framework, file, st.st_size, record.sha256, state, last_used)


def _models(home: Path | str | None) -> Iterator[CachedFile | Path]:
    """Each model file under the home described, and each sidecar as its path."""
    for framework, path, file in list(_walk(_home(home))):
        if layout.is_sidecar(path.name):
            yield path
            continue
        with contextlib.suppress(OSError):  # removed while scanning
            yield _describe(path, framework, file)


def scan(home: Path | str | None = None) -> list[CachedFile]:
    """Every model file in the cache (sidecars excluded), sorted by path."""
    return [found for found in _models(home) if isinstance(found, CachedFile)]


def verify(
    files: Iterable[CachedFile] | None = None,
    *,
    home: Path | str | None = None,
    repair: bool = False,
) -> list[Verification]:
    """Rehash cached files against their records (:func:`rehash_and_repair` for each)."""
    return [
        rehash_and_repair(cached.path, repair=repair)
        for cached in (scan(home) if files is None else files)
    ]


def _unlink(path: Path) -> int:
    """Delete ``path``; the bytes freed (0 if it was gone already)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def remove(files: Iterable[CachedFile | Path]) -> int:
    """Delete cached files with their sidecars (never the lock file); return bytes freed.

    Each file is removed under its lock, so a download in progress finishes first.
    """
    freed = 0
    for item in files:
        path = item.path if isinstance(item, CachedFile) else item
        partial = layout.partial_path(path)
        with target_lock(path, label=path.name):
            for name in (path, layout.record_path(path), partial, layout.resume_path(partial)):
                freed += _unlink(name)
            freed += _unlink(layout.corrupt_path(path))
    return freed


def _leftover(name: str, target: Path) -> str | None:
    """Why sidecar ``name`` of ``target`` is no longer needed (None: keep it)."""
    if name.endswith(layout.TMP):
        return "temporary file"
    if name.endswith((layout.PARTIAL, layout.RESUME)):
        return "partial download"
    if name.endswith(layout.CORRUPT):
        return "quarantined corrupt copy"
    if name.endswith(layout.RECORD) and not target.exists():
        return "record of a missing file"
    return None


def prune(
    home: Path | str | None = None,
    *,
    max_size: int | None = None,
    dry_run: bool = False,
) -> list[Pruned]:
    """Remove what the cache no longer needs, never touching a download in progress.

    Always: partial downloads, quarantined ``.corrupt`` copies, records whose model file is
    gone, leftover temporary files (lock files stay). With ``max_size`` (bytes): then the
    least recently used models until the total is within the budget.
    """
    pruned: list[Pruned] = []

    def drop(path: Path, reason: str) -> None:
        try:
            size = path.stat().st_size
        except OSError:
            return
        if not dry_run:
            _unlink(path)
        pruned.append(Pruned(path, reason, size))

    models: list[CachedFile] = []
    for found in _models(home):
        if isinstance(found, CachedFile):
            models.append(found)
            continue
        target = found.with_name(layout.owner_name(found.name) or found.name)
        reason = _leftover(found.name, target)
        if reason is not None:
            with try_target_lock(target) as free:
                if free:  # else a download of this model is running
                    drop(found, reason)
    if max_size is not None:
        total = sum(m.size for m in models)
        for model in sorted(models, key=lambda m: m.last_used):
            if total <= max_size:
                break
            with try_target_lock(model.path) as free:
                if free:
                    drop(model.path, f"least recently used (budget {max_size} bytes)")
                    drop(layout.record_path(model.path), "record of a pruned file")
                    total -= model.size
    return pruned
