"""The configuration every CLI command runs with: global options over the environment.

``omnihub --home DIR --url URL --offline COMMAND`` overrides ``OMNIHUB_HOME``,
``OMNIHUB_URL`` and ``OMNIHUB_OFFLINE`` for that one run. The values are passed to
:func:`omnihub.config.resolve` as explicit arguments, so precedence stays argument >
environment > default and ``omnihub doctor`` reports them as coming from "argument".
"""

from __future__ import annotations

from omnihub.config import Config, resolve

__all__ = ["current", "set_overrides"]

_overrides: dict[str, object] = {}


def set_overrides(**values: object) -> None:
    """Replace the overrides; ``None`` values are dropped (not given)."""
    _overrides.clear()
    _overrides.update({key: value for key, value in values.items() if value is not None})


def current() -> Config:
    """Resolve the configuration with the command line's overrides applied."""
    return resolve(**_overrides)
