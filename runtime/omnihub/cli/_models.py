"""``omnihub list`` and ``omnihub info``: read the installed catalogues, never generated code."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from omnihub.catalog import ModelEntry
from omnihub.cli._main import ExitCode
from omnihub.cli._names import resolve_one
from omnihub.cli._output import entry_to_json, format_size, print_json, print_table
from omnihub.errors import OmnihubError
from omnihub.loaders._placeholders import EMPTY_UPSTREAM_TAG, upstream_placeholder_note
from omnihub.search import Criteria, list_models, qualified_name

__all__ = ["cmd_info", "cmd_list"]


def cmd_list(args: argparse.Namespace) -> int:
    """List the installed models that match the filters, as a table or JSON."""
    criteria = Criteria(
        name=args.pattern,
        framework=args.framework,
        model_type=args.model_type,
        format=args.format,
        tags=tuple(args.tag),
        package=args.package,
        repository=args.repository,
    )
    models = list_models(criteria)
    if args.cached:
        models = [m for m in models if _is_cached(m)]
    if args.json:
        print_json([_with_warning(entry_to_json(m), m) for m in models])
        return ExitCode.OK
    if not models:
        sys.stderr.write(f"no installed model matches {criteria.describe()}\n")
        return ExitCode.OK
    print_table(
        ("NAME", "FRAMEWORK", "TYPE", "FORMAT", "SIZE", "TAGS"),
        [
            (
                qualified_name(m),
                m.framework.value,
                m.model_type.value,
                m.format.value,
                format_size(m.size),
                ",".join(_marked_tags(m)),
            )
            for m in models
        ],
    )
    return ExitCode.OK


def _marked_tags(entry: ModelEntry) -> tuple[str, ...]:
    """The entry's tags, plus a mark if its file is a known empty upstream placeholder."""
    if upstream_placeholder_note(entry.sha256) is None:
        return entry.tags
    return (*entry.tags, EMPTY_UPSTREAM_TAG)


def _with_warning(data: dict[str, Any], entry: ModelEntry) -> dict[str, Any]:
    """``data`` plus a ``warning`` key when the entry's file is a known empty placeholder."""
    note = upstream_placeholder_note(entry.sha256)
    return data if note is None else {**data, "warning": note}


def _info_rows(entry: ModelEntry, convert: bool = False) -> list[tuple[str, str]]:
    rows = [
        ("name", qualified_name(entry)),
        ("spec name", entry.name),
        ("framework", entry.framework.value),
        ("type", entry.model_type.value),
        ("format", entry.format.value),
        ("file", entry.file),
        ("size", format_size(entry.size) if entry.size is None else f"{entry.size} bytes"),
        ("sha256", entry.sha256 or "- (pins on first download)"),
        *[("warning", note) for note in [upstream_placeholder_note(entry.sha256)] if note],
        ("url", entry.url or "-"),
        ("repository", entry.repository or "- (fallback chain)"),
    ]
    optional = {
        "hugging face id": entry.hugging_face_id,
        "file pattern": entry.file_pattern,
        "revision": entry.revision,
        "license": entry.license,
        "factory": entry.factory,
        "source": entry.source,
    }
    rows += [(key, value) for key, value in optional.items() if value]
    if entry.tags:
        rows.append(("tags", ", ".join(entry.tags)))
    rows += [(f"metadata.{key}", str(value)) for key, value in sorted(entry.metadata.items())]
    rows.append(("cache", _cache_state(entry)))
    rows.append(("runnable", _runnable(entry)[1]))
    if convert:
        from omnihub.cli._run import converts

        rows.append(("converts", converts(entry)[1]))
    rows.append(("python", f"from omnihub_generated.{entry.package} import {entry.python_name}"))
    return rows


def _is_cached(entry: ModelEntry) -> bool:
    """Whether a verified copy is in the cache (the runtime's cheap hit test, no hashing)."""
    from omnihub.cache import is_fresh
    from omnihub.cli._config import current
    from omnihub.hub import target_path

    try:
        return is_fresh(target_path(entry, current()), entry.sha256, entry.size)
    except OmnihubError:
        return False


def _cache_state(entry: ModelEntry) -> str:
    """``cached <path>`` when a verified copy is present, else where it would go."""
    from omnihub.cache import is_fresh
    from omnihub.cli._config import current
    from omnihub.hub import target_path

    try:
        path = target_path(entry, current())
    except OmnihubError as exc:
        return f"- ({exc})"
    if is_fresh(path, entry.sha256, entry.size):
        return f"cached at {path}"
    return f"not cached (would be {path})"


def _runnable(entry: ModelEntry) -> tuple[bool, str]:
    """Whether ``omnihub run`` can execute the model (format and installed libraries only)."""
    from omnihub.cli._run import runnable

    return runnable(entry)


def cmd_info(args: argparse.Namespace) -> int:
    """Show every catalogue field of one model, and how to load it from Python."""
    entry = resolve_one(args.name)
    if args.json:
        ok, how = _runnable(entry)
        extra: dict[str, object] = {
            "cache": _cache_state(entry),
            "runnable": ok,
            "runnable_how": how,
        }
        if args.convert:
            from omnihub.cli._run import converts

            extra["converts"], extra["converts_how"] = converts(entry)
        print_json(_with_warning({**entry_to_json(entry), **extra}, entry))
        return ExitCode.OK
    rows = _info_rows(entry, args.convert)
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        sys.stdout.write(f"{key.ljust(width)}  {value}\n")
    if entry.documentation:
        sys.stdout.write("\n" + entry.documentation.strip() + "\n")
    return ExitCode.OK
