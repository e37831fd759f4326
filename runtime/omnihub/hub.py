"""Resolve, download, verify and cache model files: :func:`fetch`.

``fetch(entry)`` returns the verified file at ``$OMNIHUB_HOME/<framework>/<file>``.

- Hit: one ``stat`` plus the small record beside the file (:func:`omnihub.cache.is_fresh`);
  no hashing, no socket, no import of requests or tqdm.
- Miss: take the per-target lock (one download however many threads or processes ask),
  look again (someone may have just finished), otherwise walk the repositories
  (:mod:`omnihub.repositories`) and download into ``<file>.incomplete``
  (:func:`omnihub.download.download`), which verifies size and sha256; then publish with an
  atomic ``os.replace`` and write the record. A corrupt cached copy is moved aside to
  ``<file>.corrupt`` and fetched again, with a warning.
- Entries without a declared sha256 get the hash of their first download recorded (trust on
  first use); any later download or cached copy must match it.
- ``OMNIHUB_OFFLINE=1``: no network at all; a missing model raises
  :class:`~omnihub.errors.OfflineError` naming the path where it was expected.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from omnihub.cache import is_fresh, touch_record
from omnihub.config import resolve
from omnihub.urls import cache_path

# Not ``from typing import TYPE_CHECKING``: a cache hit must not pay for importing typing.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import logging

    from omnihub.cache import Record
    from omnihub.catalog import ModelEntry
    from omnihub.config import Config
    from omnihub.download import Transfer
    from omnihub.repositories import Source

__all__ = ["fetch", "partial_path", "target_path"]


def target_path(entry: ModelEntry, config: Config | None = None) -> Path:
    """Where ``entry``'s file lives in the cache (validated: always inside the home)."""
    cfg = resolve() if config is None else config
    return cache_path(cfg.home, str(entry.framework), entry.file)


def partial_path(path: Path) -> Path:
    """``<file>.incomplete``: where a download of ``path`` is written before verification."""
    return path.with_name(path.name + ".incomplete")


def fetch(entry: ModelEntry, *, force_download: bool = False, config: Config | None = None) -> Path:
    """Return the verified local path of ``entry``'s file, downloading it if needed.

    ``force_download=True`` downloads again even when cached, replacing the cached copy only
    once the new one is verified. ``config`` defaults to :func:`omnihub.config.resolve`.
    """
    cfg = resolve() if config is None else config
    path = cache_path(cfg.home, str(entry.framework), entry.file)
    if not force_download and is_fresh(path, entry.sha256, entry.size):
        touch_record(path)
        return path
    return _fetch_slow(entry, path, cfg, force_download)


def _label(entry: ModelEntry) -> str:
    return f"{entry.package}.{entry.python_name}" if entry.package else entry.name


def _logger() -> logging.Logger:
    import logging

    return logging.getLogger("omnihub")


def _check_existing(entry: ModelEntry, path: Path, *, label: str, writable: bool) -> bool:
    """Validate a cached file the cheap test rejected; True if it is good.

    Rehashes it. A good file gets a fresh record (if ``writable``); a bad one is moved aside
    to ``<file>.corrupt`` with a warning (if ``writable``) so the caller fetches it again. One
    whose record is marked lost, or whose fsync fails now, is never good (see
    :func:`omnihub.cache.mark_lost`): it is removed, or left marked lost, and fetched again.
    """
    from omnihub.cache import (
        Record,
        forget,
        hash_file,
        quarantine,
        read_record,
        write_durable_record,
    )

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        from omnihub.errors import ConfigurationError

        raise ConfigurationError(
            f"{label}: {path} exists but is not a regular file; the model cannot be cached "
            "there (remove it, or fix the catalogue if another model's directory is in the way)"
        )
    if is_fresh(path, entry.sha256, entry.size):
        return True
    record = read_record(path)
    if record is not None and record.lost:
        # An fsync of it failed: a rehash would read the page cache, not the disk.
        if writable:
            forget(path)
            _logger().warning(
                "%s: the disk failed to keep %s (an fsync reported a write-back error); "
                "removed it and fetching it again",
                label,
                path,
            )
        return False
    digest, size = hash_file(path)
    expected = entry.sha256.lower() if entry.sha256 else (record.sha256 if record else None)
    problem = None
    if entry.size is not None and size != entry.size:
        problem = f"size {size} bytes, expected {entry.size}"
    elif expected is not None and digest != expected:
        problem = f"sha256 {digest}, expected {expected}"
    if problem is None:
        if writable:
            from omnihub._partial import WriteError

            origin = "declared" if entry.sha256 else "first-use"
            url = record.url if record else None
            try:
                write_durable_record(path, Record(size, st.st_mtime_ns, digest, origin, url))
            except WriteError as exc:  # the disk lost it: marked so, and fetched again
                _logger().warning("%s: %s", label, exc)
                return False
        return True
    if not writable:
        return False
    aside = quarantine(path)
    _logger().warning(
        "%s: cached file %s is corrupt (%s); moved it to %s and fetching it again",
        label,
        path,
        problem,
        aside,
    )
    return False


def _tofu_sha256(entry: ModelEntry, path: Path) -> tuple[str | None, str]:
    """The sha256 a download must have, and its origin (declared or first use)."""
    if entry.sha256:
        return entry.sha256.lower(), "declared"
    from omnihub.cache import read_record

    record: Record | None = read_record(path)
    if record is not None and record.origin == "first-use":
        return record.sha256, "first-use"
    return None, "first-use"


def _fetch_slow(entry: ModelEntry, path: Path, cfg: Config, force_download: bool) -> Path:
    from omnihub.errors import DownloadError, IntegrityError, OfflineError
    from omnihub.locking import target_lock

    label = _label(entry)
    if cfg.offline:
        if force_download:
            raise OfflineError(
                f"{label}: force_download=True but offline mode is on (OMNIHUB_OFFLINE=1); "
                f"the cached file would be {path}"
            )
        from omnihub.cache import read_record

        existed = path.exists()
        before = read_record(path) if existed else None
        if _check_existing(entry, path, label=label, writable=os.access(path.parent, os.W_OK)):
            return path
        gone = existed and not path.exists()  # repaired: moved aside, or removed if lost
        after = None if gone else read_record(path)
        if not existed:
            state = "is not cached"
        elif any(r is not None and r.lost for r in (before, after)):
            state = "was not kept by the disk (an fsync of it failed)"
            state += " (removed)" if gone else ""
        else:
            state = "is corrupt (moved aside)" if gone else "is corrupt"
        raise OfflineError(
            f"{label} {state} and offline mode is on (OMNIHUB_OFFLINE=1); "
            f"expected a verified file at {path}"
        )

    def ready() -> bool:
        return not force_download and is_fresh(path, entry.sha256, entry.size)

    stack = contextlib.ExitStack()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        held = stack.enter_context(target_lock(path, label=label, ready=ready))
    except OSError as exc:
        # Read-only home: a good cached copy can still be used, nothing can be written.
        if not force_download and _check_existing(entry, path, label=label, writable=False):
            return path
        raise DownloadError(
            f"{label}: cannot download into {path}: {exc.strerror or exc} "
            f"(is OMNIHUB_HOME={cfg.home} writable?)"
        ) from None
    with stack:
        if not held:  # another process published it while we waited
            touch_record(path)
            return path
        if not force_download and _check_existing(entry, path, label=label, writable=True):
            return path
        expected, origin = _tofu_sha256(entry, path)
        partial = partial_path(path)
        try:
            transfer, source = _download_any(
                entry, path=path, partial=partial, cfg=cfg, expected_sha256=expected, label=label
            )
        except IntegrityError as exc:
            raise IntegrityError(f"{exc} (for {path})") from None
        unsettled = _publish(path, partial, transfer, source=source, origin=origin, label=label)
    if unsettled is not None:
        # After the lock is released: the settling thread takes it to rewrite the record.
        from omnihub._durable import settle

        settle(path, unsettled, label=label)
    return path


def _download_any(
    entry: ModelEntry,
    *,
    path: Path,
    partial: Path,
    cfg: Config,
    expected_sha256: str | None,
    label: str,
) -> tuple[Transfer, Source]:
    """Try each repository's sources in order; fall back on not-found or unavailable only."""
    from omnihub.download import WriteError, download
    from omnihub.errors import DownloadError, ModelNotFoundError
    from omnihub.repositories import repositories_for

    failures: list[str] = []
    all_not_found = True
    for repository in repositories_for(entry):
        try:
            sources = repository.sources(entry, cfg)
        except (ModelNotFoundError, DownloadError) as exc:
            all_not_found &= isinstance(exc, ModelNotFoundError)
            failures.append(f"[{repository.name}] {exc}")
            continue
        for source in sources:
            try:
                transfer = download(
                    source.url,
                    partial,
                    config=cfg,
                    expected_size=entry.size,
                    expected_sha256=expected_sha256,
                    private_headers=source.headers,
                    allow_file=source.allow_file,
                    label=label,
                )
            except WriteError:
                raise
            except (ModelNotFoundError, DownloadError) as exc:
                all_not_found &= isinstance(exc, ModelNotFoundError)
                failures.append(f"[{source.repository}] {exc}")
                _logger().info("%s: %s; trying the next source", label, exc)
                continue
            return transfer, source
    if not failures:
        raise ModelNotFoundError(
            f"{label}: no repository can provide {entry.framework}/{entry.file} "
            f"(repository={entry.repository!r}); it would be cached at {path}"
        )
    summary = "; ".join(failures)
    if all_not_found:
        raise ModelNotFoundError(f"{label} was not found: {summary}; it would be cached at {path}")
    raise DownloadError(f"{label} could not be downloaded to {path}: {summary}")


def _publish(
    path: Path, partial: Path, transfer: Transfer, *, source: Source, origin: str, label: str
) -> Record | None:
    """Move the verified partial into place atomically and record it.

    Where :func:`omnihub._durable.deferred` (Linux), the partial was not fsynced yet: the
    record names this boot, and it is returned for :func:`omnihub._durable.settle` to make
    the file durable and clear it once the lock is released. Elsewhere the partial is
    already fsynced, only the directory is left to sync, and None is returned.
    """
    from omnihub import _durable
    from omnihub.cache import Record, write_record
    from omnihub.urls import redact_url

    st = os.stat(partial)
    os.replace(partial, path)
    deferred = _durable.deferred()
    record = Record(
        transfer.size,
        st.st_mtime_ns,
        transfer.sha256,
        origin,
        redact_url(source.url),
        boot_id=_durable.boot_id() if deferred else None,
    )
    write_record(path, record)
    if not deferred:
        _durable.sync_directory(path.parent)
    _logger().info(
        "%s: downloaded %d bytes from %s into %s",
        label,
        transfer.size,
        redact_url(source.url),
        path,
    )
    return record if deferred else None
