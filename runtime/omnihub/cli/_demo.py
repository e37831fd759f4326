"""``omnihub demo``: run the offline tour of :mod:`omnihub.demo`."""

from __future__ import annotations

import argparse

from omnihub.cli._config import set_overrides
from omnihub.demo import demo

__all__ = ["cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    """Build a file:// zoo, download from it with a progress bar, load and summarize."""
    set_overrides()  # the demo sets up its own home and zoo; --home/--url do not apply
    return demo(args.dir)
