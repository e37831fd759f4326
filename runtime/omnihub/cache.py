"""The model cache: records, the cheap hit test, rehash-and-repair, and maintenance.

Beside each verified file omnihub keeps a small record (:class:`Record`: size, mtime,
sha256). A hit compares the record with one ``stat`` -- truncation or replacement is noticed
without rehashing. :func:`rehash_and_repair` is the one full check, shared by ``fetch``
(when the hit test fails) and ``omnihub verify``. File names come from :mod:`omnihub.layout`.

Durability: a record vouches for content, so it is written only after the file's data is on
disk (:func:`replace_durably` fsyncs the file, renames it and fsyncs the directory). A
record lost in a crash only costs a rehash; a record that outlived its data cannot happen.

Maintenance API (``omnihub cache ...``): :func:`scan`, :func:`verify`, :func:`remove`,
:func:`prune`. None of them deletes a lock file or touches a file whose lock is held.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path

import attrs

from omnihub import layout

# Not ``from typing import TYPE_CHECKING``: a cache hit must not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "CachedFile",
    "Pruned",
    "Record",
    "Verification",
    "atomic_write_text",
    "check_directory",
    "directory_problem",
    "hash_file",
    "is_fresh",
    "prune",
    "quarantine",
    "read_record",
    "rehash_and_repair",
    "remove",
    "replace_durably",
    "scan",
    "sync_file",
    "touch_record",
    "verify",
    "write_record",
]

_HASH_CHUNK = 1 << 20


@attrs.frozen
class Record:
    """What omnihub knows about a verified cached file.

    ``origin`` is ``"declared"`` when ``sha256`` came from the catalogue, ``"first-use"``
    when it is the hash of the first download (trust on first use).
    """

    size: int
    mtime_ns: int
    sha256: str
    origin: str = "declared"
    url: str | None = None


def read_record(path: Path) -> Record | None:
    """The record of ``path`` (the one parser), or None when missing or malformed."""
    try:
        with open(layout.record_path(path), "rb") as fh:
            data = json.loads(fh.read())
        url = data.get("url")
        return Record(
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
            sha256=str(data["sha256"]),
            origin=str(data.get("origin", "declared")),
            url=url if isinstance(url, str) else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def sync_file(path: Path) -> None:
    """fsync ``path``'s data (cheap when it is clean already)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):  # POSIX; a rename is durable on its own elsewhere
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_durably(source: Path, target: Path, *, fsync: bool = True) -> None:
    """The one atomic writer: move ``source`` over ``target`` so a crash leaves one or the
    other. With ``fsync`` the data reaches the disk first and the directory after."""
    if fsync:
        sync_file(source)
    os.replace(source, target)
    if fsync:
        _sync_directory(target.parent)


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` atomically (records and resume sidecars).

    The temporary file gets an unpredictable name and is created exclusively without
    following symlinks, so a symlink planted by another user of a shared cache is never
    followed. Not fsynced: losing one of these files in a crash costs a rehash or a restart,
    never a wrong answer. Mode 0644 (less the umask): records are shared like their files.
    """
    tmp = target.with_name(f"{target.name}.{os.urandom(6).hex()}{layout.TMP}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        replace_durably(tmp, target, fsync=False)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_record(path: Path, record: Record) -> None:
    """Write ``path``'s record atomically (call only once its data is on disk)."""
    text = json.dumps(attrs.asdict(record), sort_keys=True) + "\n"
    atomic_write_text(layout.record_path(path), text)


def touch_record(path: Path) -> None:
    """Mark ``path`` as just used (the record's own mtime); silently skipped if read-only."""
    with contextlib.suppress(OSError):
        os.utime(layout.record_path(path))


def is_fresh(path: Path, sha256: str | None, size: int | None) -> bool:
    """The cheap hit test: file and record agree on size and mtime, and with the catalogue.

    One ``stat`` and one small read; no hashing, no network, no heavy import.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    record = read_record(path)
    return (
        record is not None
        and (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns)
        and (sha256 is None or record.sha256 == sha256.lower())
        and (size is None or size == st.st_size)
    )


def hash_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size)`` of the file's content."""
    import hashlib  # not at module level: a cache hit never hashes

    hasher = hashlib.sha256()
    size = 0
    buf = bytearray(_HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            hasher.update(view[:n])
            size += n
    return hasher.hexdigest(), size


def quarantine(path: Path) -> Path:
    """Move a bad cached file aside to ``<file>.corrupt`` (replacing an older one)."""
    aside = layout.corrupt_path(path)
    os.replace(path, aside)
    return aside


@attrs.frozen
class Verification:
    """The outcome of :func:`rehash_and_repair` for one file.

    ``message`` says what was found and done ("sha256 matches", "size 3 bytes, expected 5;
    moved aside to ...").
    """

    path: Path
    ok: bool
    sha256: str
    size: int
    message: str


def rehash_and_repair(
    path: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    repair: bool = True,
    locked: bool = False,
) -> Verification:
    """Rehash ``path`` and compare it with ``sha256``/``size`` (the catalogue's), else with its
    record (trust on first use). A good file gets a fresh record once fsynced (best effort:
    skipped on a read-only home). With ``repair`` a bad one is moved aside to
    ``<file>.corrupt`` -- unless a download holds its lock (``locked``: the caller holds it).
    """
    from omnihub.locking import try_target_lock

    digest, found = hash_file(path)
    record = read_record(path)
    expected = sha256.lower() if sha256 else (record.sha256 if record else None)
    if size is not None and found != size:
        problem = f"size {found} bytes, expected {size}"
    elif expected is not None and digest != expected:
        problem = f"sha256 {digest}, expected {expected}"
    else:
        origin = "declared" if sha256 else (record.origin if record else "first-use")
        message = (
            "sha256 matches" if expected else "no record; recorded its sha256 (trust on first use)"
        )
        fresh = Record(found, os.stat(path).st_mtime_ns, digest, origin)
        fresh = attrs.evolve(fresh, url=record.url if record else None)
        if record != fresh:
            try:
                sync_file(path)  # the record vouches for the disk, not the page cache
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EINVAL, errno.EACCES):
                    why = f"the disk failed to keep it (fsync: {exc.strerror or exc})"
                    return Verification(path, False, digest, found, why)
            try:
                write_record(path, fresh)
            except OSError as exc:
                if expected is None:
                    message = f"no record, and cannot write one: {exc.strerror or exc}"
        return Verification(path, True, digest, found, message)
    if repair:
        with contextlib.ExitStack() as stack:
            if not locked and not stack.enter_context(try_target_lock(path)):
                problem += "; busy (being downloaded), left in place"
            elif path.exists():
                problem += f"; moved aside to {quarantine(path)}"
    return Verification(path, False, digest, found, problem)


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

    Looks at ``directory`` and then its ancestors until an existing one: a regular file or
    other non-directory in the way, a dangling symlink, a symlink loop. A missing directory
    whose ancestors are fine is no problem (it is created on first download); permission
    errors are left to the operation that meets them.
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
    """Raise :class:`~omnihub.errors.CacheDirectoryError` if :func:`directory_problem` finds
    one for ``directory`` (the home or a directory inside it), naming the home's setting."""
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


def _describe(path: Path, framework: str, file: str) -> CachedFile:
    st = path.stat()
    record = read_record(path)
    if record is None:
        return CachedFile(path, framework, file, st.st_size, None, "unrecorded", st.st_mtime)
    fresh = (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns)
    try:
        last_used = max(layout.record_path(path).stat().st_mtime, st.st_mtime)
    except OSError:
        last_used = st.st_mtime
    state = "ok" if fresh else "changed"
    return CachedFile(path, framework, file, st.st_size, record.sha256, state, last_used)


def _followed(fw_dir: Path) -> bool:
    """A framework directory to walk: a directory, or a symlink to one that the current user
    owns (DL4J users link ``samediff`` to a bigger disk; a symlink planted by another user of
    a shared home must not make ``prune`` delete files elsewhere)."""
    if fw_dir.name.startswith(".") or not fw_dir.is_dir():
        return False
    if not fw_dir.is_symlink():
        return True
    return not hasattr(os, "geteuid") or fw_dir.lstat().st_uid in (os.geteuid(), 0)


def _walk(home: Path) -> Iterable[tuple[str, Path, str]]:
    """Yield ``(framework, path, relative file)`` for every regular file under the home.

    A missing home is an empty cache; a home that is a file, a dangling symlink or a loop
    raises :class:`~omnihub.errors.CacheDirectoryError` (never "empty")."""
    check_directory(home, home=home)
    if not home.is_dir():
        return
    for fw_dir in sorted(home.iterdir()):
        if not _followed(fw_dir):
            continue
        for root, dirs, files in os.walk(fw_dir):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                if not path.is_symlink():
                    yield fw_dir.name, path, path.relative_to(fw_dir).as_posix()


def scan(home: Path | str | None = None) -> list[CachedFile]:
    """Every model file in the cache (sidecars excluded), sorted by path."""
    found = []
    for framework, path, file in _walk(_home(home)):
        if layout.is_sidecar(path.name):
            continue
        with contextlib.suppress(OSError):  # removed while scanning
            found.append(_describe(path, framework, file))
    return found


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
    from omnihub.locking import target_lock

    freed = 0
    for item in files:
        path = item.path if isinstance(item, CachedFile) else item
        with target_lock(path, label=path.name):
            freed += _unlink(path)
            partial = layout.partial_path(path)
            for name in (layout.record_path(path), partial, layout.resume_path(partial)):
                freed += _unlink(name)
            freed += _unlink(layout.corrupt_path(path))
    return freed


def _leftover(path: Path, target: Path) -> str | None:
    """Why sidecar ``path`` of ``target`` is no longer needed (None: keep it)."""
    name = path.name
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
    from omnihub.locking import try_target_lock

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
    for framework, path, file in list(_walk(_home(home))):
        owner = layout.owner_name(path.name)
        if owner is None:
            with contextlib.suppress(OSError):
                models.append(_describe(path, framework, file))
            continue
        target = path.with_name(owner)
        reason = _leftover(path, target)
        if reason is not None:
            with try_target_lock(target) as free:
                if free:  # else a download of this model is running
                    drop(path, reason)
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
