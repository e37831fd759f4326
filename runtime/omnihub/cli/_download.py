"""``omnihub download NAME...``: fetch models in parallel through the real runtime."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from omnihub.catalog import ModelEntry
from omnihub.cli._config import current
from omnihub.cli._main import ExitCode, error_line, exit_code_for
from omnihub.cli._names import resolve_many
from omnihub.cli._output import format_size, print_json
from omnihub.cli._progress import progress_board
from omnihub.config import Config
from omnihub.errors import OmnihubError
from omnihub.hub import fetch, target_path
from omnihub.search import qualified_name

__all__ = ["cmd_download", "download_entries", "show_progress"]


def show_progress(requested: bool | None, *, disabled_by_config: bool) -> bool:
    """Bars: forced by ``--progress``/``--no-progress``, else on an interactive stderr."""
    if requested is not None:
        return requested
    return not disabled_by_config and sys.stderr.isatty()


_Outcome = tuple[ModelEntry, Path | None, BaseException | None]


def _parallel(
    entries: list[ModelEntry], *, force: bool, config: Config, jobs: int
) -> Iterator[_Outcome]:
    """Fetch on up to ``jobs`` daemon threads, yielding outcomes as they complete.

    Daemon threads, not a ThreadPoolExecutor: on Ctrl-C the main thread must be able to
    exit at once instead of waiting for every transfer in flight. An interrupted download
    leaves only its ``.incomplete`` file, which the next attempt resumes.
    """
    todo: queue.SimpleQueue[ModelEntry] = queue.SimpleQueue()
    for entry in entries:
        todo.put(entry)
    outcomes: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()

    def work() -> None:
        while True:
            try:
                entry = todo.get_nowait()
            except queue.Empty:
                return
            try:
                outcomes.put((entry, fetch(entry, force_download=force, config=config), None))
            except BaseException as exc:  # handed to the main thread, which decides
                outcomes.put((entry, None, exc))

    for number in range(max(1, min(jobs, len(entries)))):
        threading.Thread(target=work, name=f"omnihub-download-{number}", daemon=True).start()
    for _ in entries:
        yield outcomes.get()


def download_entries(
    entries: list[ModelEntry], *, force: bool, jobs: int, progress: bool, quiet: bool = False
) -> tuple[list[tuple[ModelEntry, Path]], list[tuple[ModelEntry, BaseException]]]:
    """Fetch ``entries`` with up to ``jobs`` threads; return (successes, failures).

    Each finished model prints one line (path and size on stdout, or the error on
    stderr) unless ``quiet``. Expected errors are collected, unexpected ones re-raised.
    """
    config = current()
    targets = [(entry, target_path(entry, config)) for entry in entries]
    done: list[tuple[ModelEntry, Path]] = []
    failed: list[tuple[ModelEntry, BaseException]] = []
    with progress_board(targets, enabled=progress, stream=sys.stderr) as board:
        for entry, path, exc in _parallel(entries, force=force, config=config, jobs=jobs):
            if exc is not None:
                if not isinstance(exc, (OmnihubError, OSError)):
                    raise exc  # a bug, not an expected failure: let it surface
                failed.append((entry, exc))
                board.finish(entry, None, ok=False)
                if not quiet:
                    board.write(error_line(exc, qualified_name(entry)), sys.stderr)
                continue
            assert path is not None
            size = path.stat().st_size
            done.append((entry, path))
            board.finish(entry, size, ok=True)
            if not quiet:
                board.write(f"{qualified_name(entry)}  {path}  {format_size(size)}", sys.stdout)
    return done, failed


def cmd_download(args: argparse.Namespace) -> int:
    """Download (or confirm cached) every NAME; exit non-zero if any failed."""
    entries = resolve_many(args.names)
    requested = False if args.json else args.progress
    progress = show_progress(requested, disabled_by_config=current().disable_progress)
    done, failed = download_entries(
        entries, force=args.force, jobs=args.jobs, progress=progress, quiet=args.json
    )
    if args.json:
        print_json(
            {
                "downloaded": [
                    {"name": qualified_name(e), "path": str(p), "size": p.stat().st_size}
                    for e, p in done
                ],
                "failed": [
                    {"name": qualified_name(e), "error": type(x).__name__, "message": str(x)}
                    for e, x in failed
                ],
            }
        )
    if failed:
        return max(exit_code_for(exc) for _, exc in failed)
    return ExitCode.OK
