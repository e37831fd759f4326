"""omnihub: typed, verified, resumable model downloads and loaders for the omnihub zoo.

The public names are imported lazily (PEP 562) so that ``import omnihub`` -- done by every
generated package -- costs next to nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: keeps ``import omnihub`` from importing typing

__version__ = "0.1.0"

# name -> module that defines it
_LAZY: dict[str, str] = {
    "DEFAULT_OMNIHUB_URL": "omnihub._enums",
    "Format": "omnihub._enums",
    "Framework": "omnihub._enums",
    "ModelType": "omnihub._enums",
    "Catalog": "omnihub.catalog",
    "ModelEntry": "omnihub.catalog",
    "ModelFile": "omnihub.model_file",
    "ConfigurationError": "omnihub.errors",
    "DownloadError": "omnihub.errors",
    "IntegrityError": "omnihub.errors",
    "LoadError": "omnihub.errors",
    "ModelNotFoundError": "omnihub.errors",
    "OfflineError": "omnihub.errors",
    "OmnihubError": "omnihub.errors",
    "fetch": "omnihub.hub",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:
    from typing import Any

    from omnihub._enums import DEFAULT_OMNIHUB_URL, Format, Framework, ModelType
    from omnihub.catalog import Catalog, ModelEntry
    from omnihub.errors import (
        ConfigurationError,
        DownloadError,
        IntegrityError,
        LoadError,
        ModelNotFoundError,
        OfflineError,
        OmnihubError,
    )
    from omnihub.hub import fetch
    from omnihub.model_file import ModelFile


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omnihub' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
