"""``omnihub mirror DEST [NAME...]`` and ``omnihub mirror --check DEST``.

Copies verified model files into a mirror in the zoo's layout (see :mod:`omnihub.mirror`),
or verifies an existing mirror against its manifest without downloading anything.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

from omnihub.cli._config import current
from omnihub.cli._download import show_progress
from omnihub.cli._main import ExitCode
from omnihub.cli._names import resolve_many
from omnihub.cli._output import format_size, print_json
from omnihub.mirror import CheckedFile, MirroredFile, check, mirror, open_store
from omnihub.search import list_models

__all__ = ["cmd_mirror"]


@contextlib.contextmanager
def _bar(enabled: bool, total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A byte-count tqdm bar on stderr (nothing, and no tqdm import, when disabled)."""
    if not enabled:
        yield lambda _count: None
        return
    from tqdm import tqdm

    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr
    ) as bar:

        def update(count: int) -> None:
            bar.update(count)

        yield update


def _mirror(args: argparse.Namespace, progress: bool) -> int:
    entries = resolve_many(args.names) if args.names else list_models()
    store = open_store(args.dest)
    total = sum(e.size or 0 for e in entries) if all(e.size for e in entries) else None

    def report(result: MirroredFile) -> None:
        if args.json:
            return
        if result.status == "failed":
            print(f"omnihub: error: {result.name}: {result.error}", file=sys.stderr)
        else:
            size = format_size(result.size or 0)
            print(f"{result.name}  {result.status}  {result.path}  {size}", flush=True)

    with _bar(progress, total, "mirror") as update:
        results = mirror(entries, store, config=current(), progress=update, on_file=report)
    failed = [r for r in results if r.status == "failed"]
    if args.json:
        print_json(
            {
                "dest": args.dest,
                "copied": sum(r.status == "copied" for r in results),
                "present": sum(r.status == "present" for r in results),
                "failed": len(failed),
                "bytes": sum(r.size or 0 for r in results if r.status == "copied"),
                "files": [{k: v for k, v in vars_of(r).items() if v is not None} for r in results],
            }
        )
    return ExitCode.FAILURE if failed else ExitCode.OK


def vars_of(result: MirroredFile | CheckedFile) -> dict[str, object]:
    """The fields of a result as a dict (for --json)."""
    import attrs

    return attrs.asdict(result)


def _check(args: argparse.Namespace, progress: bool) -> int:
    store = open_store(args.dest)
    with _bar(progress, None, "check") as update:
        results = check(store, progress=update)
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json(
            {
                "dest": args.dest,
                "ok": len(results) - len(bad),
                "bad": len(bad),
                "files": [vars_of(r) for r in results],
            }
        )
    else:
        for result in results:
            line = f"{result.path}  {result.status}"
            print(f"{line}  {result.message}" if result.message else line)
    return ExitCode.PROBLEMS if bad else ExitCode.OK


def cmd_mirror(args: argparse.Namespace) -> int:
    """Mirror the NAMEs (default: every installed model) into DEST, or ``--check`` DEST."""
    requested = False if args.json else args.progress
    progress = show_progress(requested, disabled_by_config=current().disable_progress)
    if args.check:
        if args.names:
            raise SystemExit("omnihub mirror: --check takes only DEST, no NAMEs")
        return _check(args, progress)
    return _mirror(args, progress)
