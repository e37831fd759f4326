"""The one rule that turns a model's declared name into its generated Python name.

1. camelCase and PascalCase words are split: ``ResNet50`` -> ``Res_Net50``,
   ``HTTPServer`` -> ``HTTP_Server``, ``vgg19NoTop`` -> ``vgg19_No_Top``;
2. everything is lower-cased;
3. every run of characters outside ``[a-z0-9]`` (punctuation, spaces, underscores,
   any non-ASCII character) becomes a single ``_``; leading and trailing ``_`` are dropped;
4. an empty result becomes ``model``; a leading digit gets the prefix ``model_``;
5. Python keywords, soft keywords and the names a generated module itself uses
   (:data:`RESERVED`) get a trailing ``_`` (``class`` -> ``class_``).

The result always matches ``[a-z][a-z0-9_]*``, is never a keyword, and applying the rule to
its own output gives the output back (idempotence), so an explicit ``python_name=`` override
is valid exactly when ``python_name(x) == x``.
"""

from __future__ import annotations

import keyword
import re

__all__ = ["RESERVED", "is_valid_python_name", "python_name"]

#: Names a generated module binds or uses itself: models may not shadow them.
RESERVED: frozenset[str] = frozenset(
    {*keyword.kwlist, *keyword.softkwlist, "annotations", "bool", "staticmethod"}
    | {"match", "case", "type", "_"}
)

_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ACRONYM_WORD = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_VALID = re.compile(r"[a-z][a-z0-9_]*\Z")


def python_name(name: str) -> str:
    """Return the generated function name for a model declared as ``name``."""
    text = _ACRONYM_WORD.sub("_", _LOWER_UPPER.sub("_", name)).lower()
    text = _NON_WORD.sub("_", text).strip("_")
    if not text:
        text = "model"
    elif text[0].isdigit():
        text = "model_" + text
    if text in RESERVED:
        text += "_"
    return text


def is_valid_python_name(name: str) -> bool:
    """Whether ``name`` is a fixed point of :func:`python_name` (a valid override)."""
    return bool(_VALID.match(name)) and python_name(name) == name
