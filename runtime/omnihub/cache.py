"""The state of one cache entry: its record, the hit test, durable publishing, and repair.

Beside each verified file omnihub keeps a small record (:class:`Record`: size, mtime, sha256)
so that a hit costs one ``stat`` and one small read: truncation or replacement changes size
or mtime and is noticed without rehashing. :func:`rehash_and_repair` is the one full check,
shared by ``fetch`` (when the hit test fails) and ``omnihub verify``.

A record vouches for content, so it never reaches the disk before that content:
:func:`publish` fsyncs the data, renames it into place, writes the record, then fsyncs the
directory once for both renames. Whatever a crash keeps of that, no record describes data the
disk lost (a record without its rename names a size and mtime the old file does not have).
The whole-cache API (``scan``, ``verify``, ``remove``, ``prune``) is :mod:`omnihub.cache_admin`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os

import attrs

from omnihub import layout

# Not ``from typing import TYPE_CHECKING``: a cache hit must not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "Record",
    "Verification",
    "atomic_write_text",
    "hash_file",
    "is_fresh",
    "publish",
    "quarantine",
    "read_record",
    "rehash_and_repair",
    "sync_file",
    "touch_record",
    "write_record",
]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: A record is well under 1 KiB; reading more than this never yields one.
_RECORD_MAX = 1 << 16


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


def _record(path: Path) -> str:
    """:func:`omnihub.layout.record_path` as a string, without pathlib (the hit path)."""
    return os.fspath(path) + layout.RECORD


def read_record(path: Path) -> Record | None:
    """The record of ``path`` (the one parser), or None when missing or not a record.

    Strict: sizes and times are JSON integers, texts are strings; whatever else a crash, a
    disk or another program left there is no record (the caller rehashes).
    """
    try:
        # O_NONBLOCK: a FIFO planted as the record is no record, not a hang
        fd = os.open(_record(path), os.O_RDONLY | _CLOEXEC | _NONBLOCK)
        try:
            data = json.loads(os.read(fd, _RECORD_MAX))
        finally:
            os.close(fd)
        size, mtime_ns, sha256 = data["size"], data["mtime_ns"], data["sha256"]
        origin, url = data.get("origin", "declared"), data.get("url")
    except (OSError, ValueError, LookupError, TypeError, AttributeError, RecursionError):
        return None
    if type(size) is not int or type(mtime_ns) is not int:  # not bool, float or text
        return None
    if not isinstance(sha256, str) or not isinstance(origin, str):
        return None
    return Record(size, mtime_ns, sha256, origin, url if isinstance(url, str) else None)


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` atomically (records and resume sidecars), unsynced.

    The temporary file gets an unpredictable name and is created exclusively without
    following symlinks, so a symlink planted in a shared cache is never followed. Losing
    one of these files in a crash costs a rehash or a restart, never a wrong answer. Mode
    0644 less the umask: records are shared like their files.
    """
    tmp = target.with_name(f"{target.name}.{os.urandom(6).hex()}{layout.TMP}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        try:
            data = text.encode()
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_record(path: Path, record: Record) -> None:
    """Write ``path``'s record atomically (only once its data is on disk)."""
    text = json.dumps(attrs.asdict(record), sort_keys=True) + "\n"
    atomic_write_text(layout.record_path(path), text)


def touch_record(path: Path) -> None:
    """Mark ``path`` as just used (the record's own mtime); silently skipped if read-only."""
    with contextlib.suppress(OSError):
        os.utime(_record(path))


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


def sync_file(path: Path) -> os.stat_result:
    """fsync ``path``'s data (cheap when it is clean already); its ``stat`` after."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def publish(source: Path, target: Path, *, sha256: str, origin: str, url: str | None) -> None:
    """Move the verified ``source`` to ``target`` durably and record it.

    fsync the data, rename it over ``target``, write the record, fsync the directory: one
    directory fsync makes both renames durable, and neither can describe or expose data
    that is not on disk. An :class:`OSError` before the rename leaves ``target`` untouched.
    """
    st = sync_file(source)
    os.replace(source, target)
    write_record(target, Record(st.st_size, st.st_mtime_ns, sha256, origin, url))
    if hasattr(os, "O_DIRECTORY"):  # POSIX; elsewhere a rename is durable on its own
        fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def hash_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size)`` of the file's content."""
    import hashlib  # not at module level: a cache hit never hashes

    hasher = hashlib.sha256()
    size = 0
    buf = bytearray(1 << 20)
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
    """The outcome of :func:`rehash_and_repair`: ``message`` says what was found and done
    ("sha256 matches", "size 3 bytes, expected 5; moved aside to ...")."""

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
    record (trust on first use). A good file gets a fresh record once fsynced (skipped on a
    read-only home). With ``repair`` a bad one is moved aside to ``<file>.corrupt`` -- unless
    a download holds its lock (``locked``: the caller holds it).
    """
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
        url = record.url if record else None
        fresh = Record(found, os.stat(path).st_mtime_ns, digest, origin, url)
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
        from omnihub.locking import try_target_lock

        with contextlib.ExitStack() as stack:
            if not locked and not stack.enter_context(try_target_lock(path)):
                problem += "; busy (being downloaded), left in place"
            elif os.path.exists(path):
                problem += f"; moved aside to {quarantine(path)}"
    return Verification(path, False, digest, found, problem)
