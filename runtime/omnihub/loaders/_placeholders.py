"""Known empty upstream files, by sha256, so the CLI can mark them without loading them.

The SameDiff loader recognises an empty graph by its structure (no ops, weights or constants)
and raises :class:`~omnihub.errors.LoadError`; ``omnihub list``/``info`` cannot load files,
so they mark the catalogue entries whose declared sha256 is one of these (hashes from the
omnihub zoo's snapshot, ``../shared/data/omnihub-zoo-catalog.json``). Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["EMPTY_UPSTREAM_TAG", "UPSTREAM_PLACEHOLDERS", "upstream_placeholder_note"]

#: How ``omnihub list`` marks such a model in its TAGS column.
EMPTY_UPSTREAM_TAG = "!empty-upstream"

_INPUT_ONLY = "only an input placeholder and its example array: no ops, no weights"

#: sha256 -> what the file holds.
UPSTREAM_PLACEHOLDERS: Mapping[str, str] = {
    # bvlcalexnet-12.fb and caffenet-12.fb (byte-identical), 602,496 bytes
    "120987f064caf13c6176621b45972d392953eda01031ad45b85b41d1f1385372": _INPUT_ONLY,
    # version-RFB-320.fb, 921,984 bytes
    "06f04eeca8a2fc703033f903ad8ecc71e4ab1745872c36494dc9abcbd099fff8": _INPUT_ONLY,
    # version-RFB-640.fb, 3,686,784 bytes
    "22e3842e0c01739acc1de232b51c3ae833a4ded1145089964df630551baa8522": _INPUT_ONLY,
}


def upstream_placeholder_note(sha256: str | None) -> str | None:
    """A one-line warning if ``sha256`` is a known empty upstream file, else None."""
    held = UPSTREAM_PLACEHOLDERS.get((sha256 or "").lower())
    if held is None:
        return None
    return (
        f"empty upstream placeholder: the published file holds {held}; loading it raises LoadError"
    )
