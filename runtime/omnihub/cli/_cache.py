"""``omnihub cache ls|rm|prune`` and ``omnihub verify``, on the runtime's cache API.

All cache logic lives in :mod:`omnihub.cache_admin` (and :mod:`omnihub.cache`); this module
maps cached files back to the installed catalogues (so rows show model names), renders
reports and picks exit codes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omnihub import cache, cache_admin
from omnihub.catalog import ModelEntry
from omnihub.cli._config import current
from omnihub.cli._main import ExitCode, error_line
from omnihub.cli._names import is_glob, resolve_many
from omnihub.cli._output import format_size, format_time, print_json, print_table
from omnihub.config import Config
from omnihub.errors import ConfigurationError, ModelNotFoundError
from omnihub.hub import target_path
from omnihub.search import list_models, qualified_name

__all__ = ["cmd_cache_ls", "cmd_cache_prune", "cmd_cache_rm", "cmd_verify"]


def _catalogue_index(config: Config) -> dict[Path, ModelEntry]:
    """Cache path -> the installed model stored there (first package wins on a clash)."""
    index: dict[Path, ModelEntry] = {}
    for entry in list_models():
        try:
            path = target_path(entry, config)
        except ConfigurationError:
            continue  # an entry with an invalid file name can never be cached
        index.setdefault(path, entry)
    return index


def _label(path: Path, index: dict[Path, ModelEntry]) -> str:
    entry = index.get(path)
    return qualified_name(entry) if entry is not None else "-"


def _cached_json(item: cache_admin.CachedFile, index: dict[Path, ModelEntry]) -> dict[str, object]:
    entry = index.get(item.path)
    return {
        "name": qualified_name(entry) if entry is not None else None,
        "framework": item.framework,
        "file": item.file,
        "path": str(item.path),
        "size": item.size,
        "sha256": item.sha256,
        "state": item.state,
        "last_used": item.last_used,
    }


def cmd_cache_ls(args: argparse.Namespace) -> int:
    """List every cached model file with its size, state and last use."""
    config = current()
    home = config.home
    files = cache_admin.scan(home)
    index = _catalogue_index(config)
    if args.json:
        print_json([_cached_json(item, index) for item in files])
        return ExitCode.OK
    if not files:
        sys.stderr.write(f"the cache at {home} is empty\n")
        return ExitCode.OK
    print_table(
        ("NAME", "FILE", "SIZE", "STATE", "LAST USED"),
        [
            (
                _label(item.path, index),
                f"{item.framework}/{item.file}",
                format_size(item.size),
                item.state,
                format_time(item.last_used),
            )
            for item in files
        ],
    )
    total = sum(item.size for item in files)
    sys.stdout.write(f"\n{len(files)} file(s), {format_size(total)} in {home}\n")
    return ExitCode.OK


def _select_cached(
    names: list[str], files: list[cache_admin.CachedFile], config: Config
) -> tuple[list[cache_admin.CachedFile], list[ModelEntry]]:
    """Cached files for NAMEs; also the named models that are not cached.

    A NAME is a model name (see docs/cli.md) or, for files no catalogue knows, the cached
    file's ``<framework>/<file>`` as ``omnihub cache ls`` shows it.
    """
    by_path = {item.path: item for item in files}
    by_file = {f"{item.framework}/{item.file}": item for item in files}
    models = list_models()
    selected: dict[Path, cache_admin.CachedFile] = {}
    missing: list[ModelEntry] = []
    for name in names:
        if name in by_file:
            selected.setdefault(by_file[name].path, by_file[name])
            continue
        try:
            entries = resolve_many([name], models)
        except ModelNotFoundError:
            if is_glob(name):
                matched = [item for key, item in by_file.items() if _glob(name, key)]
                if matched:
                    for item in matched:
                        selected.setdefault(item.path, item)
                    continue
            raise
        for entry in entries:
            cached = by_path.get(target_path(entry, config))
            if cached is None:
                missing.append(entry)
            else:
                selected.setdefault(cached.path, cached)
    return list(selected.values()), missing


def _glob(pattern: str, text: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(text, pattern)


def cmd_cache_rm(args: argparse.Namespace) -> int:
    """Delete the named models' cached files and their sidecars."""
    config = current()
    home = config.home
    files, missing = _select_cached(args.names, cache_admin.scan(home), config)
    freed = sum(item.size for item in files) if args.dry_run else cache_admin.remove(files)
    verb = "would delete" if args.dry_run else "deleted"
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "removed": [str(item.path) for item in files],
                "not_cached": [qualified_name(entry) for entry in missing],
                "freed": freed,
            }
        )
        return ExitCode.OK
    for item in files:
        sys.stdout.write(f"{verb} {item.path}\n")
    for entry in missing:
        sys.stderr.write(f"{qualified_name(entry)} is not cached\n")
    sys.stdout.write(f"{verb} {len(files)} file(s), {format_size(freed)}\n")
    return ExitCode.OK


def cmd_cache_prune(args: argparse.Namespace) -> int:
    """Remove partial downloads, stale sidecars and (optionally) orphans or LRU models."""
    config = current()
    home = config.home
    pruned = list(cache_admin.prune(home, max_size=args.max_size, dry_run=args.dry_run))
    orphans: list[cache_admin.CachedFile] = []
    if args.orphans:
        index = _catalogue_index(config)
        orphans = [item for item in cache_admin.scan(home) if item.path not in index]
        if not args.dry_run:
            cache_admin.remove(orphans)
    rows = [(str(p.path), p.reason, p.size) for p in pruned]
    rows += [(str(o.path), "not in any installed catalogue", o.size) for o in orphans]
    freed = sum(size for _, _, size in rows)
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "removed": [{"path": p, "reason": r, "size": s} for p, r, s in rows],
                "freed": freed,
            }
        )
        return ExitCode.OK
    verb = "would delete" if args.dry_run else "deleted"
    for path, reason, size in rows:
        sys.stdout.write(f"{verb} {path} ({reason}, {format_size(size)})\n")
    sys.stdout.write(f"{verb} {len(rows)} file(s), {format_size(freed)}\n")
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Rehash cached files, report each, and (unless --no-repair) re-download bad ones.

    Each file is checked by :func:`omnihub.cache.rehash_and_repair` against its catalogue
    entry (declared size and sha256) when it has one, else against its record.
    """
    config = current()
    scanned = cache_admin.scan(config.home)
    index = _catalogue_index(config)
    if args.names:
        files, missing = _select_cached(args.names, scanned, config)
    else:
        files, missing = scanned, []
    repair = not args.no_repair
    report: list[dict[str, object]] = []
    to_fetch: list[ModelEntry] = list(missing) if repair else []
    for item in files:
        entry = index.get(item.path)
        result = cache.rehash_and_repair(
            item.path,
            sha256=entry.sha256 if entry is not None else None,
            size=entry.size if entry is not None else None,
            repair=repair,
        )
        if result.ok and entry is not None and not entry.sha256:
            result = _check_first_use_pin(result, entry, repair=repair)
        if not result.ok and repair and entry is not None:
            to_fetch.append(entry)
        report.append(
            {
                "name": qualified_name(entry) if entry is not None else None,
                "path": str(item.path),
                "ok": result.ok,
                "message": result.message,
                "repaired": False,
            }
        )
    report += [
        {
            "name": qualified_name(entry),
            "path": str(target_path(entry, config)),
            "ok": False,
            "message": "not cached",
            "repaired": False,
        }
        for entry in missing
    ]
    if to_fetch:
        _repair(to_fetch, report, quiet=args.json)
    return _print_verify(report, as_json=args.json)


def _check_first_use_pin(
    result: cache.Verification, entry: ModelEntry, *, repair: bool
) -> cache.Verification:
    """A copy trusted on first use must still pass its format's cheap check: a captive
    portal's page pinned by an older omnihub is bad; with ``repair`` it is moved aside and
    its record (the pin) dropped, so that the download again is checked afresh."""
    import attrs

    from omnihub.formats import format_problem
    from omnihub.layout import record_path
    from omnihub.locking import try_target_lock

    path = result.path
    problem = format_problem(path, str(entry.format))
    if problem is None:
        return result
    message = f"trusted on first use, but it is {problem}, not a {entry.format} model"
    if repair:
        with try_target_lock(path) as free:
            if not free:
                message += "; busy (being downloaded), left in place"
            else:
                message += f"; moved aside to {cache.quarantine(path)}"
                record_path(path).unlink(missing_ok=True)
    return attrs.evolve(result, ok=False, message=message)


def _repair(entries: list[ModelEntry], report: list[dict[str, object]], *, quiet: bool) -> None:
    from omnihub.cli._download import download_entries

    done, failed = download_entries(entries, force=False, jobs=4, progress=False, quiet=True)
    by_name = {str(row["name"]): row for row in report}
    for entry, _path in done:
        row = by_name[qualified_name(entry)]
        row["repaired"] = True
        again = "" if row["message"] == "not cached" else " again"
        row["message"] = f"{row['message']}; downloaded{again} and verified"
    for entry, exc in failed:
        row = by_name[qualified_name(entry)]
        row["message"] = f"{row['message']}; repair failed: {type(exc).__name__}: {exc}"
        if not quiet:
            sys.stderr.write(error_line(exc, qualified_name(entry)) + "\n")


def _print_verify(report: list[dict[str, object]], *, as_json: bool) -> int:
    remaining = [row for row in report if not row["ok"] and not row["repaired"]]
    if as_json:
        print_json(report)
    else:
        for row in report:
            status = "ok" if row["ok"] else ("repaired" if row["repaired"] else "BAD")
            name = row["name"] or row["path"]
            sys.stdout.write(f"{status:8}  {name}  {row['message']}\n")
        repaired = sum(1 for row in report if row["repaired"])
        sys.stdout.write(
            f"{len(report)} checked, {len(report) - len(remaining) - repaired} ok, "
            f"{repaired} repaired, {len(remaining)} bad\n"
        )
    return ExitCode.PROBLEMS if remaining else ExitCode.OK
