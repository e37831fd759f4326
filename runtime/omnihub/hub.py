"""Resolve, download, verify and cache model files: :func:`fetch`.

``fetch(entry)`` returns the verified file at ``$OMNIHUB_HOME/<framework>/<file>``:

1. Hit: one ``stat`` plus the small record beside the file (:func:`omnihub.cache.is_fresh`);
   no hashing, no socket, no import of requests.
2. Miss: take the file's lock (one download however many threads or processes ask; a
   waiter returns as soon as the holder publishes), then rehash what is there
   (:func:`omnihub.cache.rehash_and_repair`: a good copy gets a fresh record, a bad one is
   moved aside to ``<file>.corrupt``).
3. Walk the repositories (:mod:`omnihub.repositories`) and :func:`omnihub.download.download`
   into ``<file>.incomplete``, verified against the declared size and sha256.
4. Publish (:func:`omnihub.cache.publish`): fsync the file, ``os.replace`` it into place,
   write the record, fsync the directory -- so a record never vouches for data not on disk.

Entries without a declared sha256 get the hash of their first download recorded (trust on
first use); later downloads and cached copies must match it. Such a download is pinned only
once it passes its format's cheap check (:func:`omnihub.formats.format_problem`: not an HTML
captive-portal page, an empty body or a Git LFS pointer); ``force_download=True`` replaces a
first-use pin, never a declared hash. ``OMNIHUB_OFFLINE=1``: no
network; a missing model raises :class:`~omnihub.errors.OfflineError` naming the path.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from omnihub.cache import is_fresh, touch_record
from omnihub.config import resolve, resolve_home
from omnihub.layout import partial_path
from omnihub.urls import cache_path

# Not ``from typing import TYPE_CHECKING``: a cache hit must not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

    from omnihub.catalog import ModelEntry
    from omnihub.config import Config
    from omnihub.download import Transfer
    from omnihub.repositories import Source

__all__ = ["fetch", "partial_path", "target_path"]


def target_path(entry: ModelEntry, config: Config | None = None) -> Path:
    """Where ``entry``'s file lives in the cache (validated: always inside the home)."""
    cfg = resolve() if config is None else config
    return _target(cfg.home, str(entry.framework), entry.file)


def fetch(entry: ModelEntry, *, force_download: bool = False, config: Config | None = None) -> Path:
    """Return the verified local path of ``entry``'s file, downloading it if needed.

    ``force_download=True`` downloads again even when cached, replacing the cached copy only
    once the new one is verified. ``config`` defaults to :func:`omnihub.config.resolve`; a
    cache hit resolves only the home (:func:`omnihub.config.resolve_home`).
    """
    home = resolve_home() if config is None else config.home
    path = _target(home, str(entry.framework), entry.file)
    if not force_download and is_fresh(path, entry.sha256, entry.size):
        touch_record(path)
        return path
    return _fetch_slow(entry, path, resolve() if config is None else config, force_download)


@functools.lru_cache(maxsize=4096)
def _target(home: Path, framework: str, file: str) -> Path:
    """:func:`omnihub.urls.cache_path`, remembered (it is pure): a hit builds no path."""
    return cache_path(home, framework, file)


def _label(entry: ModelEntry) -> str:
    return f"{entry.package}.{entry.python_name}" if entry.package else entry.name


def _logger() -> logging.Logger:
    import logging

    return logging.getLogger("omnihub")


def _repaired(entry: ModelEntry, path: Path, *, label: str, writable: bool) -> bool:
    """True if the copy at ``path`` is good (rehashed); a bad one is moved aside if
    ``writable`` (the caller holds the lock), with a warning."""
    from omnihub.cache import rehash_and_repair

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
    check = rehash_and_repair(
        path, sha256=entry.sha256, size=entry.size, repair=writable, locked=True
    )
    if not check.ok and writable:
        _logger().warning(
            "%s: cached file %s is corrupt (%s); fetching it again", label, path, check.message
        )
    return check.ok


def _pinned_sha256(entry: ModelEntry, path: Path) -> tuple[str | None, str]:
    """The sha256 a download must have, and its origin (declared, or first use)."""
    if entry.sha256:
        return entry.sha256.lower(), "declared"
    from omnihub.cache import read_record

    record = read_record(path)
    if record is not None and record.origin == "first-use":
        return record.sha256, "first-use"
    return None, "first-use"


def _offline(entry: ModelEntry, path: Path, force_download: bool, label: str) -> Path:
    from omnihub.errors import OfflineError

    if force_download:
        raise OfflineError(
            f"{label}: force_download=True but offline mode is on (OMNIHUB_OFFLINE=1); "
            f"the cached file would be {path}"
        )
    existed = path.exists()
    if _repaired(entry, path, label=label, writable=os.access(path.parent, os.W_OK)):
        return path
    if not existed:
        state = "is not cached"
    else:
        state = "is corrupt" if path.exists() else "is corrupt (moved aside)"
    raise OfflineError(
        f"{label} {state} and offline mode is on (OMNIHUB_OFFLINE=1); "
        f"expected a verified file at {path}"
    )


def _fetch_slow(entry: ModelEntry, path: Path, cfg: Config, force_download: bool) -> Path:
    import contextlib

    from omnihub.cache_admin import check_directory
    from omnihub.errors import DownloadError, IntegrityError, OmnihubError
    from omnihub.locking import target_lock

    label = _label(entry)
    given = cfg.sources.get("home", "argument")
    setting = "OMNIHUB_HOME" if given.startswith("environment") else f"OMNIHUB_HOME: {given}"
    try:
        check_directory(path.parent, home=cfg.home, source=setting)
    except OmnihubError as exc:
        raise type(exc)(f"{label}: {exc}") from None
    if cfg.offline:
        return _offline(entry, path, force_download, label)

    def ready() -> bool:
        return not force_download and is_fresh(path, entry.sha256, entry.size)

    stack = contextlib.ExitStack()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        held = stack.enter_context(target_lock(path, label=label, ready=ready))
    except OSError as exc:
        # Read-only home: a good cached copy can still be used, nothing can be written.
        if not force_download and _repaired(entry, path, label=label, writable=False):
            return path
        raise DownloadError(
            f"{label}: cannot download into {path}: {exc.strerror or exc} "
            f"(is OMNIHUB_HOME={cfg.home} writable?)"
        ) from None
    with stack:
        if not held:  # another process published it while we waited
            touch_record(path)
            return path
        if not force_download and _repaired(entry, path, label=label, writable=True):
            return path
        expected, origin = _pinned_sha256(entry, path)
        if force_download and origin == "first-use":
            expected = None  # the user asked to replace what was trusted on first use
        partial = partial_path(path)
        try:
            transfer, source = _download_any(
                entry, path=path, partial=partial, cfg=cfg, expected_sha256=expected, label=label
            )
        except IntegrityError as exc:
            raise IntegrityError(f"{exc} (for {path})") from None
        _publish(path, partial, transfer, source=source, origin=origin, label=label)
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
    from omnihub.download import download
    from omnihub.errors import DownloadError, ModelNotFoundError, WriteError
    from omnihub.repositories import repositories_for
    from omnihub.urls import redact_url

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
            problem = None if entry.sha256 else _format_problem(entry, partial)
            if problem is not None:  # a captive portal's page is never trusted on first use
                all_not_found = False
                failures.append(f"[{source.repository}] {redact_url(source.url)}: {problem}")
                _logger().info("%s: %s; trying the next source", label, failures[-1])
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


def _format_problem(entry: ModelEntry, partial: Path) -> str | None:
    """Why the downloaded ``partial`` cannot be ``entry``'s model (then it is deleted), or
    None; run before a hash is trusted on first use."""
    import contextlib

    from omnihub.formats import format_problem
    from omnihub.layout import resume_path

    problem = format_problem(partial, str(entry.format))
    if problem is None:
        return None
    for leftover in (partial, resume_path(partial)):
        with contextlib.suppress(OSError):
            leftover.unlink()
    return (
        f"the body is {problem}, not a {entry.format} model; nothing was cached "
        "(without a declared sha256 only a plausible file is trusted on first use)"
    )


def _publish(
    path: Path, partial: Path, transfer: Transfer, *, source: Source, origin: str, label: str
) -> None:
    """Publish the verified partial with its record (:func:`omnihub.cache.publish`)."""
    from omnihub.cache import publish
    from omnihub.errors import WriteError
    from omnihub.urls import redact_url

    url = redact_url(source.url)
    try:
        publish(partial, path, sha256=transfer.sha256, origin=origin, url=url)
    except OSError as exc:
        why = exc.strerror or exc
        if not os.path.lexists(partial):  # failed after the rename: the file is in place
            raise WriteError(
                f"{label}: {path} is in place but the disk failed to record it ({why}); "
                "it is rehashed on its next use"
            ) from None
        import contextlib

        with contextlib.suppress(OSError):
            partial.unlink()
        raise WriteError(
            f"{label}: the disk failed to keep {partial} ({why}); nothing was kept"
        ) from None
    _logger().info("%s: downloaded %d bytes from %s into %s", label, transfer.size, url, path)
