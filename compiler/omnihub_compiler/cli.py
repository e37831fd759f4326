"""``omnihub-compile SPEC_DIR -o OUT_DIR [--docs PAGE] [--check] [--force]`` and
``omnihub-compile pin SPEC_DIR [--check] [--refresh] [--use-cache] [-j N]``.

Exit codes: 0 success (or, with ``--check``, the output is current); 1 spec or lock errors
(one ``spec/<file>.py:<line>: <message>`` line each, nothing written), with ``--check`` a
stale output (one ``would write``/``would remove`` line per file), models ``pin`` could not
download (one line each; the others are recorded), or an I/O error; 2 usage errors.

``pin`` is recognised as the first argument only (a spec directory named ``pin`` is
``./pin``), so ``omnihub-compile spec/ -o generated/`` keeps working unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnihub-compile",
        description="Compile an omnihub spec/ directory into typed omnihub_generated packages."
        " (See also: omnihub-compile pin SPEC_DIR.)",
    )
    parser.add_argument("spec", type=Path, help="the spec directory (spec/*.py)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("generated"), help="output directory"
    )
    parser.add_argument(
        "--docs",
        type=Path,
        metavar="PAGE",
        help="also write the Markdown model catalogue there (e.g. docs/models.md)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing every file that differs (the --docs page too)",
    )
    parser.add_argument(
        "--force", action="store_true", help="recompile even when the stamp says up to date"
    )
    parser.add_argument(
        "--shard-size",
        type=_positive,
        metavar="N",
        help="split namespaces of more than N models into lazily imported shard modules"
        " of N models (default: 256)",
    )
    parser.add_argument(
        "--dist-name",
        type=_dist_name,
        metavar="NAME",
        help="the distribution name in OUT_DIR/pyproject.toml (default: omnihub-generated);"
        " give each zoo published beside another its own",
    )
    return parser


def _dist_name(text: str) -> str:
    from omnihub_compiler.distribution import check_distribution_name

    try:
        return check_distribution_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _pin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnihub-compile pin",
        description="Download the models whose sha256 or size the spec lacks and record them"
        " in SPEC_DIR/omnihub.lock, which every compile reads.",
    )
    parser.add_argument("spec", type=Path, help="the spec directory (spec/*.py)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="download and write nothing; exit 1 if the lock file is out of date",
    )
    parser.add_argument(
        "--refresh", action="store_true", help="download every unpinned model again"
    )
    parser.add_argument(
        "--use-cache",
        action="store_true",
        help="download into OMNIHUB_HOME (and keep the files) instead of a temporary directory",
    )
    parser.add_argument("-j", "--jobs", type=int, default=4, help="parallel downloads (default: 4)")
    return parser


def _errors(lines: Sequence[str], what: str) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    print(f"omnihub-compile: {len(lines)} error(s); {what}", file=sys.stderr)
    return 1


def _pin(argv: Sequence[str]) -> int:
    args = _pin_parser().parse_args(argv)
    if args.jobs < 1:
        _pin_parser().error("--jobs must be at least 1")
    from omnihub.errors import OmnihubError

    from omnihub_compiler.errors import CompileError
    from omnihub_compiler.pin import pin_spec

    try:
        report = pin_spec(
            args.spec,
            refresh=args.refresh,
            check=args.check,
            use_cache=args.use_cache,
            jobs=args.jobs,
        )
    except CompileError as exc:
        return _errors(exc.lines, "nothing pinned")
    except (OSError, OmnihubError) as exc:
        print(f"omnihub-compile pin: {exc}", file=sys.stderr)
        return 1
    lock = report.lock_path
    if args.check:
        for key in report.pinned:
            print(f"would pin {key}")
        for key in report.dropped:
            print(f"would drop {key}")
        if report.stale:
            print(
                f"omnihub-compile pin: {lock} is out of date; run omnihub-compile pin",
                file=sys.stderr,
            )
            return 1
        return 0
    for key in report.pinned:
        print(f"pinned {key}")
    for key in report.dropped:
        print(f"dropped {key}")
    for line in report.failed:
        print(f"failed {line}", file=sys.stderr)
    state = "updated" if report.written else "unchanged"
    print(
        f"omnihub-compile pin: {lock} {state}: {len(report.pinned)} pinned,"
        f" {len(report.kept)} kept, {len(report.dropped)} dropped, {len(report.failed)} failed"
    )
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the compiler (or ``pin``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pin"]:
        return _pin(argv[1:])
    args = _parser().parse_args(argv)
    import gc  # here, not at the top: keeps --help fast

    gc.disable()  # a compile allocates many small objects and frees them all at exit
    from omnihub_compiler.compile import compile_spec
    from omnihub_compiler.errors import CompileError

    try:
        diff = compile_spec(
            args.spec,
            args.output,
            check=args.check,
            force=args.force,
            docs=args.docs,
            shard_size=args.shard_size,
            dist_name=args.dist_name,
        )
    except CompileError as exc:
        return _errors(exc.lines, "nothing written")
    except KeyboardInterrupt:
        print("omnihub-compile: interrupted; nothing written", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"omnihub-compile: {exc}", file=sys.stderr)
        return 1
    if args.check:
        for line in diff.lines():
            print(line)
        if diff:
            print(f"omnihub-compile: {args.output} is stale; run omnihub-compile", file=sys.stderr)
            return 1
        return 0
    n = len(diff.changed) + len(diff.removed)
    print(
        f"omnihub-compile: {n} file(s) updated in {args.output}"
        if n
        else "omnihub-compile: up to date"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
