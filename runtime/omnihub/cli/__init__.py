"""The ``omnihub`` command line: list, inspect, download, verify and manage cached models.

``main(argv)`` parses the arguments and returns the process exit code (see
:class:`~omnihub.cli._main.ExitCode` and docs/cli.md). Only :mod:`argparse` is imported up
front; each command imports what it needs when it runs, so ``omnihub --help`` stays fast.
"""

from __future__ import annotations

from omnihub.cli._main import ExitCode, main

__all__ = ["ExitCode", "main"]
