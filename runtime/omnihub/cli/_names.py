"""Resolve the NAME arguments of the command line to catalogue entries.

A NAME is a generated function name (``resnet18``), ``<package>.<function>``
(``samediff.resnet18``) or the name the spec declared; commands that act on several models
also accept globs. A NAME that matches nothing, or a plain NAME that matches models in
several packages where one is needed, is a typed error with suggestions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from omnihub.catalog import ModelEntry
from omnihub.errors import ModelNotFoundError
from omnihub.search import AmbiguousModelError, Criteria, list_models, qualified_name

__all__ = ["is_glob", "resolve_many", "resolve_one"]


def is_glob(name: str) -> bool:
    """Return whether ``name`` has glob characters (``*``, ``?``, ``[``)."""
    return any(char in name for char in "*?[")


def _not_found(name: str, models: Sequence[ModelEntry]) -> ModelNotFoundError:
    known = sorted({m.python_name for m in models} | {qualified_name(m) for m in models})
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `omnihub list`"
    if not models:
        hint = "; no omnihub_generated catalogue is installed (compile spec/ or install a zoo)"
    return ModelNotFoundError(f"no installed model is named {name!r}{hint}")


def _matches(name: str, models: Sequence[ModelEntry]) -> list[ModelEntry]:
    criteria = Criteria(name=name)
    return [m for m in models if criteria.matches(m)]


def resolve_one(name: str, models: Sequence[ModelEntry] | None = None) -> ModelEntry:
    """Return the one model ``name`` designates (no globs)."""
    catalogue = list_models() if models is None else models
    found = [] if is_glob(name) else _matches(name, catalogue)
    if not found:
        raise _not_found(name, catalogue)
    if len(found) > 1:
        names = ", ".join(qualified_name(m) for m in found)
        raise AmbiguousModelError(f"{name!r} is ambiguous: {names}; use <package>.<name>", found)
    return found[0]


def resolve_many(
    names: Iterable[str], models: Sequence[ModelEntry] | None = None
) -> list[ModelEntry]:
    """Resolve each NAME (globs expand to every match), keeping first-seen order, no repeats."""
    catalogue = list_models() if models is None else models
    resolved: dict[str, ModelEntry] = {}
    for name in names:
        found = _matches(name, catalogue) if is_glob(name) else [resolve_one(name, catalogue)]
        if not found:
            raise ModelNotFoundError(f"no installed model matches {name!r}; see `omnihub list`")
        for model in found:
            resolved.setdefault(qualified_name(model), model)
    return list(resolved.values())
