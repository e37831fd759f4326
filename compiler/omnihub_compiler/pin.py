"""``omnihub-compile pin SPEC_DIR``: measure the models whose spec lacks sha256 or size.

Like ``pip-compile --generate-hashes``: every model that does not declare both a sha256 and
a size is downloaded through the runtime (:func:`omnihub.hub.fetch`, so ``OMNIHUB_URL``,
mirrors, the Hugging Face endpoint, retries, resume and the transport policy all apply), and
its sha256 and size are recorded in ``spec/omnihub.lock`` (:mod:`omnihub_compiler.lock`),
which every compile then reads. Files go to a temporary ``OMNIHUB_HOME`` that is deleted
afterwards, unless ``use_cache`` is set (then the configured cache is used and kept warm).

Lock entries that still match the spec (same source, no contradiction) are kept without a
download unless ``refresh``; entries of models that are gone or now fully declared are
dropped. A model that cannot be downloaded is reported and left unpinned; the others are
still recorded, so a re-run only fetches what failed.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
from omnihub.catalog import ModelEntry

from omnihub_compiler.compile import build_catalogs, lock_display
from omnihub_compiler.errors import CompileError
from omnihub_compiler.lock import (
    LOCK_FILENAME,
    LockEntry,
    read_lock,
    render_lock,
    source_of,
    write_lock,
)

__all__ = ["PinReport", "needs_pin", "pin_spec"]


@attrs.frozen
class PinReport:
    """What a pin did (or, with ``check``, would do)."""

    lock_path: Path
    pinned: tuple[str, ...]  # model keys downloaded and recorded now
    kept: tuple[str, ...]  # model keys whose lock entry was still valid
    dropped: tuple[str, ...]  # lock entries removed (model gone or fully declared)
    failed: tuple[str, ...]  # "<key>: <error>" lines
    written: bool  # whether the lock file changed

    @property
    def stale(self) -> bool:
        """Whether the lock file is out of date with the spec (what ``--check`` fails on)."""
        return bool(self.pinned or self.dropped or self.failed or self.written)


def needs_pin(entry: ModelEntry) -> bool:
    """Whether the spec leaves ``entry``'s sha256 or size open."""
    from omnihub.hf_snapshot import is_snapshot

    if is_snapshot(entry):  # several files, each verified against the Hub's listing
        return False
    return entry.sha256 is None or entry.size is None


def _still_valid(entry: ModelEntry, pinned: LockEntry | None) -> bool:
    return (
        pinned is not None
        and pinned.url == source_of(entry)
        and entry.sha256 in (None, pinned.sha256)
        and entry.size in (None, pinned.size)
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _measure(entry: ModelEntry, home: Path | None) -> LockEntry:
    """Download ``entry`` through the runtime and return its measured lock entry."""
    from omnihub.cache import hash_file, read_record
    from omnihub.config import resolve
    from omnihub.hub import fetch

    config = resolve(home=home)
    path = fetch(entry, config=config)
    record = read_record(path)
    if record is not None and record.size == path.stat().st_size:
        sha256, size = record.sha256, record.size
    else:
        sha256, size = hash_file(path)
    if home is not None:
        path.unlink()  # a temporary home: keep the disk footprint to one model per worker
    return LockEntry(sha256=sha256, size=size, url=source_of(entry))


def pin_spec(
    spec_dir: Path,
    *,
    refresh: bool = False,
    check: bool = False,
    use_cache: bool = False,
    jobs: int = 4,
) -> PinReport:
    """Pin ``spec_dir``; raise :class:`CompileError` for spec or lock-file errors.

    ``check``: download nothing and write nothing; report what a pin would change.
    Raises :class:`~omnihub.errors.OfflineError` when something must be downloaded in
    offline mode (unless ``use_cache``: then cached files are used).
    """
    lock_path = spec_dir / LOCK_FILENAME
    catalogs = build_catalogs(spec_dir, use_lock=False)
    lock, errors = read_lock(lock_path, lock_display(spec_dir))
    if errors:
        raise CompileError(errors)
    old = dict(lock.entries) if lock is not None else {}
    wanted: dict[str, ModelEntry] = {}
    for catalog in catalogs:
        for model in catalog.models:
            if needs_pin(model):
                wanted[f"{model.package}.{model.python_name}"] = model
    entries = {
        key: old[key]
        for key, model in wanted.items()
        if not refresh and _still_valid(model, old.get(key))
    }
    kept = tuple(sorted(entries))
    todo = sorted(set(wanted) - set(entries))
    dropped = tuple(sorted(set(old) - set(wanted)))
    if check:
        try:
            current: str | None = lock_path.read_text(encoding="utf-8")
        except OSError:
            current = None
        differs = bool(todo) or (
            (current is not None or bool(entries)) and render_lock(entries) != current
        )
        return PinReport(lock_path, tuple(todo), kept, dropped, (), differs)
    if todo and not use_cache:
        from omnihub.config import resolve
        from omnihub.errors import OfflineError

        if resolve().offline:
            raise OfflineError(
                f"pin must download {len(todo)} model(s) but offline mode is on"
                " (OMNIHUB_OFFLINE=1); unset it, or pass --use-cache to pin from a warm cache"
            )
    failed: list[str] = []
    home = None if use_cache else Path(tempfile.mkdtemp(prefix="omnihub-pin-"))
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {key: pool.submit(_measure, wanted[key], home) for key in todo}
            for key, future in futures.items():
                try:
                    entries[key] = future.result()
                except Exception as exc:  # reported per model; the others go on
                    failed.append(f"{key}: {_one_line(exc)}")
    finally:
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    pinned = tuple(k for k in todo if k in entries)
    written = write_lock(lock_path, entries) if entries or lock is not None else False
    return PinReport(lock_path, pinned, kept, dropped, tuple(failed), written)
