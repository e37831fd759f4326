"""Unsupported layers and ops: collected over the whole model, reported once.

A converter that meets a layer (or an option of a layer) it cannot express raises
:class:`Unsupported`; the driver records it, keeps going, and at the end raises one
:class:`~omnihub.errors.LoadError` naming the first problem and listing every other one, so a
user learns everything missing from a model in one try.
"""

from __future__ import annotations

from collections.abc import Sequence

from omnihub.errors import LoadError

__all__ = ["Unsupported", "UnsupportedCollector"]


class Unsupported(Exception):
    """Raised by a converter: this layer or op (or this option of it) has no ONNX mapping."""


class UnsupportedCollector:
    """Accumulates ``(what, why)`` problems of one model; :meth:`raise_if_any` reports them."""

    def __init__(self, model: str, hint: str = "") -> None:
        self.model = model
        self.hint = hint
        self.problems: list[tuple[str, str]] = []

    def add(self, what: str, why: str) -> None:
        """Record that ``what`` (e.g. ``"layer 1 'dense' (DenseLayer)"``) is unsupported."""
        self.problems.append((what, why))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        """Raise one LoadError listing every recorded problem, if there is any."""
        if not self.problems:
            return
        raise LoadError(unsupported_message(self.model, self.problems, self.hint))


def unsupported_message(model: str, problems: Sequence[tuple[str, str]], hint: str = "") -> str:
    """``"<model>: cannot convert to ONNX: <first>; also unsupported: <rest>"``."""
    items = [f"{what}: {why}" for what, why in problems]
    message = f"{model}: cannot convert to ONNX: {items[0]}"
    if len(items) > 1:
        message += f" (and {len(items) - 1} more unsupported: {'; '.join(items[1:])})"
    return message + (f". {hint}" if hint else "")
