"""The compiler's errors: every problem is one ``spec/<file>.py:<line>: <message>`` line."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CompileError", "SpecError"]


class SpecError(Exception):
    """One problem in spec/, located at ``location`` (``spec/<file>.py:<line>``)."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class CompileError(Exception):
    """All problems found in one compile, reported together; nothing was written."""

    def __init__(self, errors: Sequence[SpecError | str]) -> None:
        self.lines = [str(e) for e in errors]
        super().__init__("\n".join(self.lines))
