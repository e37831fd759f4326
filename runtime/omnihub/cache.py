"""The model cache: cheap validation on a hit, self-repair, and maintenance for the CLI.

Layout (DL4J's, so Java and Python share one cache): ``$OMNIHUB_HOME/<framework>/<file>``.
Beside each verified file omnihub keeps ``<file>.omnihub.json``, a small record of its size,
mtime and sha256. A hit compares the record with one ``stat`` -- truncation or replacement
is noticed without rehashing -- and :func:`verify` rehashes fully. Other sidecars:
``<file>.incomplete`` (+ ``.json``) a resumable partial download, ``<file>.lock`` the
per-target lock, ``<file>.corrupt`` a quarantined bad copy.

Public maintenance API (used by ``omnihub cache ...``): :func:`scan`, :func:`verify`,
:func:`remove`, :func:`prune`.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from omnihub._value import Value, as_dict, evolve, store

# Not ``from typing import TYPE_CHECKING``: a cache hit must not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "RECORD_SUFFIX",
    "CachedFile",
    "Pruned",
    "Record",
    "Verification",
    "atomic_write_text",
    "forget",
    "hash_file",
    "is_fresh",
    "mark_lost",
    "prune",
    "quarantine",
    "read_record",
    "record_path",
    "remove",
    "scan",
    "touch_record",
    "verify",
    "write_durable_record",
    "write_record",
]

RECORD_SUFFIX = ".omnihub.json"
_SIDECARS = (".incomplete", ".incomplete.json", ".lock", RECORD_SUFFIX, ".corrupt", ".tmp")
_HASH_CHUNK = 1 << 20


class Record(Value):
    """What omnihub knows about a verified cached file.

    ``origin`` is ``"declared"`` when ``sha256`` came from the catalogue, ``"first-use"``
    when it is the hash of the first download (trust on first use). ``boot_id`` is set while
    the file may not be on disk yet (published before its fsync finished): such a record is
    trusted only during that boot (see :mod:`omnihub._durable`). ``lost`` is set when an
    fsync of the file reported that the disk did not keep its data (see :func:`mark_lost`):
    the record then vouches for nothing and the next use downloads the file again.
    """

    __slots__ = ("size", "mtime_ns", "sha256", "origin", "url", "boot_id", "lost")
    size: int
    mtime_ns: int
    sha256: str
    origin: str
    url: str | None
    boot_id: str | None
    lost: bool

    def __init__(  # noqa: PLR0917 -- positional like the attrs class it replaced
        self,
        size: int,
        mtime_ns: int,
        sha256: str,
        origin: str = "declared",
        url: str | None = None,
        boot_id: str | None = None,
        lost: bool = False,
    ) -> None:
        store(self, locals())


def record_path(path: Path) -> Path:
    """``<file>.omnihub.json`` beside ``path``."""
    return path.with_name(path.name + RECORD_SUFFIX)


def read_record(path: Path) -> Record | None:
    """The record of ``path``, or None when it is missing or unreadable."""
    try:
        with open(record_path(path), "rb") as fh:
            data = json.loads(fh.read())
        return Record(
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
            sha256=str(data["sha256"]),
            origin=str(data.get("origin", "declared")),
            url=data.get("url"),
            boot_id=data.get("boot_id"),
            lost=data.get("lost", False) is not False,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` atomically.

    The temporary file gets an unpredictable name and is created exclusively (``mkstemp``),
    so a symlink planted by another user of a shared cache is never followed.
    """
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o644)  # records are shared like the files they describe
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_record(path: Path, record: Record) -> None:
    """Write the record atomically (see :func:`atomic_write_text`)."""
    atomic_write_text(record_path(path), json.dumps(as_dict(record), sort_keys=True) + "\n")


def write_durable_record(path: Path, record: Record) -> None:
    """fsync ``path``, then write ``record`` without a boot id: it claims the data is on disk.

    Used wherever a file was just verified by rehashing it (cheap to sync if already clean).
    When the fsync fails the record is written marked lost instead (:func:`mark_lost`) and
    :class:`~omnihub.download.WriteError` is raised.
    """
    from omnihub._durable import sync_file

    try:
        sync_file(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        from omnihub._partial import WriteError

        with contextlib.suppress(OSError):
            mark_lost(path, record)
        raise WriteError(
            f"{path}: the disk failed to keep its data (fsync: {exc.strerror or exc}); "
            "it will be downloaded again"
        ) from exc
    write_record(path, evolve(record, boot_id=None))


def mark_lost(path: Path, record: Record) -> None:
    """Record that an fsync of ``path`` failed: its data may not be on the disk.

    Dropping the record instead would not do. Linux reports a write-back error to one fsync
    and then marks the pages clean, so the page cache goes on serving bytes the disk does not
    have: a rehash would find them good and vouch for them, and the next fsync would succeed.
    A lost record fails the hit test and makes the next use download the file again, while
    a caller that was just handed the path can still read it (unlinking it now could pull
    it from under a loader about to open it).
    """
    write_record(path, evolve(record, boot_id=None, lost=True))


def forget(path: Path) -> None:
    """Remove ``path``, then its record (a record without its file is a plain miss)."""
    try:
        os.unlink(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record_path(path))


def touch_record(path: Path) -> None:
    """Mark ``path`` as just used (the record's own mtime); silently skipped if read-only."""
    with contextlib.suppress(OSError):
        os.utime(record_path(path))


def is_fresh(path: Path, sha256: str | None, size: int | None) -> bool:
    """The cheap hit test: file and record agree on size and mtime, and with the catalogue.

    One ``stat`` and one small read; no hashing, no network, no heavy import. A record written
    before its file was known to be on disk counts only during the boot that wrote it; one
    marked lost (:func:`mark_lost`) never counts.
    """
    try:
        st = os.stat(path)
        with open(record_path(path), "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("lost", False) is not False:
        return False
    written_in = data.get("boot_id")
    if written_in is not None:
        from omnihub._durable import boot_id

        if written_in != boot_id():
            return False  # published before its fsync, and the machine rebooted since
    return (
        data.get("size") == st.st_size
        and data.get("mtime_ns") == st.st_mtime_ns
        and (sha256 is None or data.get("sha256") == sha256.lower())
        and (size is None or size == st.st_size)
        and isinstance(data.get("sha256"), str)
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
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    return aside


class CachedFile(Value):
    """One model file in the cache, as :func:`scan` found it.

    ``state``: ``"ok"`` (record matches size and mtime), ``"unrecorded"`` (no record yet,
    e.g. written by DL4J), ``"changed"`` (size or mtime differ from the record), ``"lost"``
    (an fsync of it failed: the next use downloads it again; see :func:`mark_lost`).
    """

    __slots__ = ("path", "framework", "file", "size", "sha256", "state", "last_used")
    path: Path
    framework: str
    file: str
    size: int
    sha256: str | None
    state: str
    last_used: float

    def __init__(  # noqa: PLR0917 -- positional like the attrs class it replaced
        self,
        path: Path,
        framework: str,
        file: str,
        size: int,
        sha256: str | None,
        state: str,
        last_used: float,
    ) -> None:
        store(self, locals())


class Verification(Value):
    """The result of rehashing one cached file."""

    __slots__ = ("file", "ok", "sha256", "message")
    file: CachedFile
    ok: bool
    sha256: str
    message: str

    def __init__(self, file: CachedFile, ok: bool, sha256: str, message: str) -> None:
        store(self, locals())


class Pruned(Value):
    """A file :func:`prune` removed (or would remove, in a dry run), and why."""

    __slots__ = ("path", "reason", "size")
    path: Path
    reason: str
    size: int

    def __init__(self, path: Path, reason: str, size: int) -> None:
        store(self, locals())


def _home(home: Path | str | None) -> Path:
    if home is not None:
        return Path(home).expanduser()
    from omnihub.config import resolve

    return resolve().home


def _is_sidecar(name: str) -> bool:
    return name.endswith(_SIDECARS) or ".omnihub.json." in name or ".incomplete.json." in name


def _describe(path: Path, framework: str, file: str) -> CachedFile:
    st = path.stat()
    record = read_record(path)
    if record is None:
        return CachedFile(path, framework, file, st.st_size, None, "unrecorded", st.st_mtime)
    fresh = record.size == st.st_size and record.mtime_ns == st.st_mtime_ns
    try:
        last_used = max(record_path(path).stat().st_mtime, st.st_mtime)
    except OSError:
        last_used = st.st_mtime
    state = "lost" if record.lost else "ok" if fresh else "changed"
    return CachedFile(path, framework, file, st.st_size, record.sha256, state, last_used)


def _walk(home: Path) -> Iterable[tuple[str, Path, str]]:
    """Yield ``(framework, path, relative file)`` for every regular file under the home."""
    if not home.is_dir():
        return
    for fw_dir in sorted(home.iterdir()):
        if fw_dir.name.startswith(".") or not fw_dir.is_dir() or fw_dir.is_symlink():
            continue
        for root, dirs, files in os.walk(fw_dir):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                if path.is_symlink():
                    continue
                yield fw_dir.name, path, path.relative_to(fw_dir).as_posix()


def scan(home: Path | str | None = None) -> list[CachedFile]:
    """Every model file in the cache (sidecars excluded), sorted by path."""
    found = []
    for framework, path, file in _walk(_home(home)):
        if _is_sidecar(path.name):
            continue
        try:
            found.append(_describe(path, framework, file))
        except OSError:
            continue  # removed while scanning
    return found


def verify(
    files: Iterable[CachedFile] | None = None,
    *,
    home: Path | str | None = None,
    repair: bool = False,
) -> list[Verification]:
    """Rehash cached files fully and compare with their records.

    A file without a record gets one (trust on first use). With ``repair=True`` a file
    whose content no longer matches is moved aside (``<file>.corrupt``) and one the disk
    failed to keep (:func:`mark_lost`) is removed, so the next use downloads it again.
    """
    from omnihub._partial import WriteError
    from omnihub.locking import try_target_lock

    results = []
    for cached in scan(home) if files is None else files:
        digest, size = hash_file(cached.path)
        record = read_record(cached.path)
        if record is None:
            message = "no record; recorded its sha256 (trust on first use)"
            try:
                st = cached.path.stat()
                write_durable_record(cached.path, Record(size, st.st_mtime_ns, digest, "first-use"))
            except WriteError as exc:
                results.append(Verification(cached, False, digest, str(exc)))
                continue
            except OSError as exc:
                message = f"no record, and cannot write one: {exc.strerror or exc}"
            results.append(Verification(cached, True, digest, message))
            continue
        if digest == record.sha256 and not record.lost:
            st = cached.path.stat()
            stale = (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns)
            if stale or record.boot_id is not None:
                try:
                    write_durable_record(
                        cached.path, evolve(record, size=size, mtime_ns=st.st_mtime_ns)
                    )
                except WriteError as exc:
                    results.append(Verification(cached, False, digest, str(exc)))
                    continue
            results.append(Verification(cached, True, digest, "sha256 matches"))
            continue
        if record.lost:
            message = "the disk failed to keep it (an fsync reported a write-back error)"
        else:
            message = f"sha256 {digest}, expected {record.sha256}"
        if repair:
            with try_target_lock(cached.path) as locked:
                if not locked:
                    message += "; busy (being downloaded), left in place"
                elif record.lost:
                    forget(cached.path)
                    message += "; removed"
                else:
                    message += f"; moved aside to {quarantine(cached.path)}"
        results.append(Verification(cached, False, digest, message))
    return results


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def remove(files: Iterable[CachedFile | Path]) -> int:
    """Delete cached files with all their sidecars; return the bytes freed."""
    from omnihub.locking import lock_path, target_lock

    freed = 0
    for item in files:
        path = item.path if isinstance(item, CachedFile) else Path(item)
        with target_lock(path, label=path.name):
            freed += _unlink(path)
            for suffix in (RECORD_SUFFIX, ".incomplete", ".incomplete.json", ".corrupt"):
                freed += _unlink(path.with_name(path.name + suffix))
            # Unlinked while held: a process that opened it meanwhile finds its descriptor no
            # longer names the path and retries, so there is never a second holder. (Windows
            # refuses to delete a held lock file; filelock removes it on release there.)
            with contextlib.suppress(PermissionError):
                _unlink(lock_path(path))
    return freed


def _base_of(name: str) -> str | None:
    """The model file a sidecar belongs to, or None for a model file itself."""
    for suffix in (".incomplete.json", ".incomplete", RECORD_SUFFIX, ".corrupt", ".lock"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    for marker in (RECORD_SUFFIX + ".", ".incomplete.json."):
        if marker in name and name.endswith(".tmp"):
            return name[: name.index(marker)]
    return None


def prune(
    home: Path | str | None = None,
    *,
    max_size: int | None = None,
    dry_run: bool = False,
) -> list[Pruned]:
    """Remove what the cache no longer needs, never touching a download in progress.

    Always: partial downloads and quarantined ``.corrupt`` copies, records and locks whose
    model file is gone, leftover temporary files. With ``max_size`` (bytes): then the least
    recently used models until the total is within the budget.
    """
    from omnihub.locking import try_target_lock

    root = _home(home)
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
    for framework, path, file in list(_walk(root)):
        base = _base_of(path.name)
        if base is None:
            with contextlib.suppress(OSError):
                models.append(_describe(path, framework, file))
            continue
        target = path.with_name(base)
        if path.name.endswith(".lock"):
            if not target.exists():
                with try_target_lock(target) as free:
                    if free:
                        drop(path, "lock of a missing file")
            continue
        with try_target_lock(target) as free:
            if not free:
                continue  # a download of this model is running
            if path.name.endswith((".incomplete", ".incomplete.json")):
                drop(path, "partial download")
            elif path.name.endswith(".corrupt"):
                drop(path, "quarantined corrupt copy")
            elif path.name.endswith(".tmp"):
                drop(path, "temporary file")
            elif not target.exists():
                drop(path, "record of a missing file")
    if max_size is not None:
        total = sum(m.size for m in models)
        for model in sorted(models, key=lambda m: m.last_used):
            if total <= max_size:
                break
            with try_target_lock(model.path) as free:
                if not free:
                    continue
                drop(model.path, f"least recently used (budget {max_size} bytes)")
                drop(record_path(model.path), "record of a pruned file")
                total -= model.size
    return pruned
