"""Argument parsing, dispatch, exit codes and one-line error reporting for ``omnihub``.

Each sub-command names its handler as ``"<module>:<function>"`` inside :mod:`omnihub.cli`;
the module is imported only when that command runs, so parsing imports nothing but argparse.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["EPILOG", "ExitCode", "build_parser", "error_line", "exit_code_for", "main"]


class ExitCode(enum.IntEnum):
    """The documented exit status of every ``omnihub`` command (docs/cli.md)."""

    OK = 0  # the command did what was asked
    FAILURE = 1  # an operation failed: download, integrity, offline, load, configuration, I/O
    USAGE = 2  # the command line itself is wrong (argparse's convention)
    NOT_FOUND = 3  # no installed model (or several) for a NAME, or no repository has the file
    PROBLEMS = 4  # verify/doctor ran and found problems that remain
    INTERRUPTED = 130  # Ctrl-C


EPILOG = """\
exit status:
  0    success
  1    an operation failed (download, integrity, offline, load, configuration, I/O)
  2    invalid command line
  3    not found: NAME matches no installed model (or several where one is needed),
       or no repository has the model's file
  4    verify or doctor found problems that remain
  130  interrupted

NAME is a generated function name (resnet18), <package>.<function> (samediff.resnet18)
or the name the spec declared; download, verify and cache rm also accept globs ('resnet*').

environment: OMNIHUB_HOME (cache directory, default ~/.omnihub), OMNIHUB_URL (zoo base URL),
OMNIHUB_OFFLINE=1 (never touch the network), OMNIHUB_DISABLE_PROGRESS=1 (no progress bars).
"""

Handler = Callable[[argparse.Namespace], int]


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: str,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


# A flat list of subcommands and their options, mirroring docs/cli.md: long, not complex.
def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915
    """Build the full ``omnihub`` argument parser."""
    from omnihub import __version__

    parser = argparse.ArgumentParser(
        prog="omnihub",
        description="List, inspect, download, verify and manage omnihub zoo models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"omnihub {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log progress (-v) or debug details and tracebacks (-vv)",
    )
    parser.add_argument(
        "--home", metavar="DIR", help="cache directory for this run (overrides OMNIHUB_HOME)"
    )
    parser.add_argument(
        "--url", metavar="URL", help="zoo base URL(s) for this run (overrides OMNIHUB_URL)"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never touch the network (overrides OMNIHUB_OFFLINE)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    lister = _command(commands, "list", "_models:cmd_list", "list the installed models")
    lister.add_argument("pattern", nargs="?", help="only names matching this NAME or glob")
    lister.add_argument("--framework", type=_choice("Framework"), help=_choices("Framework"))
    lister.add_argument(
        "--type", dest="model_type", type=_choice("ModelType"), help=_choices("ModelType")
    )
    lister.add_argument("--format", type=_choice("Format"), help=_choices("Format"))
    lister.add_argument("--tag", action="append", default=[], help="require this tag (repeatable)")
    lister.add_argument("--package", help="only this generated package")
    lister.add_argument("--repository", help="only models pinned to this repository")
    lister.add_argument(
        "--cached", action="store_true", help="only models with a verified copy in the cache"
    )
    _add_json(lister)

    info = _command(commands, "info", "_models:cmd_info", "show everything about one model")
    info.add_argument("name", metavar="NAME")
    info.add_argument(
        "--convert",
        action="store_true",
        help="also load the cached file and convert it to ONNX, to check that it can run",
    )
    _add_json(info)

    run = _command(
        commands,
        "run",
        "_run:cmd_run",
        "predict with a DL4J, SameDiff or ONNX model on .npy inputs (needs omnihub[run])",
    )
    run.add_argument("name", metavar="NAME")
    run.add_argument(
        "-i",
        "--input",
        dest="inputs",
        metavar="[NAME=]FILE.npy",
        action="append",
        default=[],
        type=_input,
        help="an input array (repeatable; NAME= for a graph's inputs or SameDiff placeholders)",
    )
    run.add_argument(
        "-o",
        "--output",
        metavar="OUT.npy",
        type=Path,
        help="save the result here (several outputs: OUT.npz keyed by name) instead of printing",
    )
    run.add_argument(
        "--outputs",
        metavar="NAME",
        action="append",
        default=[],
        help="compute only these outputs / SameDiff variables (repeatable; default: all)",
    )
    run.add_argument("--onnx", metavar="OUT.onnx", type=Path, help="also export the ONNX model")
    _add_json(run)

    download = _command(
        commands, "download", "_download:cmd_download", "download and verify models"
    )
    download.add_argument("names", metavar="NAME", nargs="+")
    download.add_argument(
        "--force", action="store_true", help="download again even if cached and valid"
    )
    download.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show per-model progress bars (default: when stderr is a terminal)",
    )
    download.add_argument(
        "-j", "--jobs", type=_positive_int, default=4, help="parallel downloads (default 4)"
    )
    _add_json(download)

    mirror = _command(
        commands,
        "mirror",
        "_mirror:cmd_mirror",
        "copy verified models into a mirror (a directory or fsspec URL), or --check one",
    )
    mirror.add_argument("dest", metavar="DEST", help="a directory, file:// or fsspec URL (s3://..)")
    mirror.add_argument("names", metavar="NAME", nargs="*", help="default: every installed model")
    mirror.add_argument(
        "--check", action="store_true", help="verify DEST against its manifest; download nothing"
    )
    mirror.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    _add_json(mirror)

    verify = _command(
        commands,
        "verify",
        "_cache:cmd_verify",
        "rehash cached models fully and repair the bad ones",
    )
    verify.add_argument("names", metavar="NAME", nargs="*", help="default: every cached model")
    verify.add_argument(
        "--no-repair", action="store_true", help="only report; do not re-download bad files"
    )
    _add_json(verify)

    cache = _command(commands, "cache", "", "inspect and clean the cache")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION")
    cache_commands.required = True
    cache_ls = _command(cache_commands, "ls", "_cache:cmd_cache_ls", "list cached files")
    _add_json(cache_ls)
    cache_rm = _command(cache_commands, "rm", "_cache:cmd_cache_rm", "delete cached models")
    cache_rm.add_argument("names", metavar="NAME", nargs="+")
    cache_rm.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    _add_json(cache_rm)
    prune = _command(
        cache_commands,
        "prune",
        "_cache:cmd_cache_prune",
        "delete partial downloads, stale records and orphans",
    )
    prune.add_argument(
        "--max-size",
        metavar="SIZE",
        type=_size,
        help="then evict least recently used models until the cache fits (e.g. 10GB, 500MiB)",
    )
    prune.add_argument(
        "--orphans",
        action="store_true",
        help="also delete cached models that no installed catalogue references",
    )
    prune.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    _add_json(prune)

    doctor = _command(
        commands,
        "doctor",
        "_doctor:cmd_doctor",
        "show the resolved configuration and check the home and repositories",
    )
    doctor.add_argument("--no-network", action="store_true", help="do not probe the repositories")
    _add_json(doctor)

    demo = _command(
        commands,
        "demo",
        "_demo:cmd_demo",
        "offline tour: build a tiny file:// zoo, download a model from it and load it",
    )
    demo.add_argument(
        "--dir", metavar="DIR", help="build the zoo and cache here (default: a temporary dir)"
    )
    return parser


def _enum(name: str) -> type[enum.Enum]:
    from omnihub import _enums

    enum_type: type[enum.Enum] = getattr(_enums, name)
    return enum_type


def _choices(name: str) -> str:
    return ", ".join(str(member.value) for member in _enum(name))


def _choice(name: str) -> Callable[[str], enum.Enum]:
    """An argparse ``type`` accepting an enum value or name in any case."""

    def convert(text: str) -> enum.Enum:
        for member in _enum(name):
            if text.casefold() in (str(member.value).casefold(), member.name.casefold()):
                return member
        raise argparse.ArgumentTypeError(f"expected one of {_choices(name)}, got {text!r}")

    convert.__name__ = name.lower()
    return convert


def _size(text: str) -> int:
    from omnihub.cli._units import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _input(text: str) -> object:
    from omnihub.cli._arrays import parse_input

    return parse_input(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _resolve_handler(spec: str) -> Handler:
    module_name, _, function = spec.partition(":")
    module = importlib.import_module(f"omnihub.cli.{module_name}")
    handler: Handler = getattr(module, function)
    return handler


def error_line(exc: BaseException, subject: str | None = None) -> str:
    """The one-line report of an expected error: ``omnihub: error: [subject: ]Type: message``."""
    text = " ".join(str(exc).split()) or repr(exc)
    where = f"{subject}: " if subject else ""
    return f"omnihub: error: {where}{type(exc).__name__}: {text}"


def _configure_logging(verbosity: int) -> None:
    if verbosity <= 0:
        return
    import logging

    logging.basicConfig(format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("omnihub").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code an expected error maps to (:attr:`ExitCode.FAILURE` by default)."""
    from omnihub.errors import ModelNotFoundError, OmnihubError

    if isinstance(exc, ModelNotFoundError) or (
        isinstance(exc, LookupError) and isinstance(exc, OmnihubError)  # AmbiguousModelError
    ):
        return ExitCode.NOT_FOUND
    return ExitCode.FAILURE


def _is_expected(exc: BaseException) -> bool:
    from omnihub.errors import OmnihubError

    return isinstance(exc, (OmnihubError, OSError))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``omnihub`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        from omnihub.cli._config import set_overrides

        set_overrides(home=args.home, urls=args.url, offline=args.offline)
        return int(_resolve_handler(args.handler)(args))
    except KeyboardInterrupt:
        print("omnihub: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `omnihub list | head`: the reader left; silence the flush at exit too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:
        if not _is_expected(exc) or args.verbose > 1:
            raise
        print(error_line(exc), file=sys.stderr)
        return exit_code_for(exc)
