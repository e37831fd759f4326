"""A cheap, conservative test for "could any installed distribution declare this group?".

Importing :mod:`importlib.metadata` and calling ``entry_points(group=...)`` costs ~20-30 ms
of CPU (it imports email, zipfile, csv... and parses every distribution's metadata). The
loader registry needs the answer on the first load of every process, including the many
processes that only wait for another one's download, and the answer is almost always "no
plugin". :func:`may_declare` reads the same ``entry_points.txt`` files the standard
distribution finder would, as raw bytes, and answers False only when none of them so much
as mentions the group; any doubt (a zip on ``sys.path``, a third-party distribution
finder, an unreadable file) answers True, and the caller then runs the real scan. So the
result of the caller's scan never changes, only how often it is paid for.
"""

from __future__ import annotations

import os
import sys

__all__ = ["may_declare"]

_INFO_SUFFIXES = (".dist-info", ".egg-info")


def _foreign_finders() -> bool:
    """True if a meta path finder other than the standard PathFinder can find distributions."""
    from importlib.machinery import PathFinder

    return any(
        finder is not PathFinder and hasattr(finder, "find_distributions")
        for finder in sys.meta_path
    )


def _mentions(path: str, needle: bytes) -> bool:
    """True if ``path`` exists and contains ``needle`` (or cannot be read: be conservative)."""
    try:
        with open(path, "rb") as file:
            return needle in file.read()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True


def _root_may_declare(root: str, needle: bytes) -> bool:
    """What the standard finder would search under one ``sys.path`` entry, grepped."""
    try:
        children = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        # Not a directory: a zip archive (or an egg file) may hold distributions; a missing
        # entry holds nothing.
        return os.path.exists(root)
    except OSError:
        return True
    is_egg = root.lower().endswith(".egg")
    for child in children:
        low = child.lower()
        is_info = low.endswith(_INFO_SUFFIXES) or (is_egg and low == "egg-info")
        if is_info and _mentions(os.path.join(root, child, "entry_points.txt"), needle):
            return True
    return False


def may_declare(group: str) -> bool:
    """False only if no distribution visible to :mod:`importlib.metadata` declares ``group``.

    True means "perhaps": call ``importlib.metadata.entry_points(group=group)`` for the
    real answer.
    """
    if _foreign_finders():
        return True
    needle = group.encode("utf-8")
    for entry in sys.path:
        if not isinstance(entry, str) or _root_may_declare(entry or ".", needle):
            return True  # an unusual sys.path entry: let importlib.metadata decide
    return False
