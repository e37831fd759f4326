"""The one entry point generated code calls.

A generated function is a single line, ``return _load("<package>", "<python_name>",
force_download=force_download)``. Everything else -- finding the catalogue entry,
resolving repositories, downloading and verifying, loading -- lives here and below.

This module is imported by every generated package at import time, so it must stay
cheap to import: nothing heavy at module level (no attrs, requests, json, numpy).
"""

from __future__ import annotations

import sys

# Not ``from typing import TYPE_CHECKING``: importing typing alone costs ~10 ms, paid by
# every ``import omnihub_generated.<ns>``. mypy treats any TYPE_CHECKING constant as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from omnihub.catalog import Catalog, ModelEntry

__all__ = ["catalog_for", "entry_for", "load_model"]

_GENERATED_ROOT = "omnihub_generated"
_catalogs: dict[str, Catalog] = {}


def _package_dir(package: str) -> Path:
    module_name = f"{_GENERATED_ROOT}.{package}"
    module = sys.modules.get(module_name)
    if module is None:
        import importlib

        module = importlib.import_module(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        from omnihub.errors import ConfigurationError

        raise ConfigurationError(f"{module_name} has no __file__; cannot locate its catalogue")
    from pathlib import Path

    return Path(file).parent


def catalog_for(package: str) -> Catalog:
    """Return (and memoize) the catalogue of ``omnihub_generated.<package>``."""
    catalog = _catalogs.get(package)
    if catalog is None:
        from omnihub.catalog import CATALOG_FILENAME, catalog_from_json

        path = _package_dir(package) / CATALOG_FILENAME
        catalog = catalog_from_json(path.read_bytes(), source=path)
        _catalogs[package] = catalog
    return catalog


def entry_for(package: str, python_name: str) -> ModelEntry:
    """Return the catalogue entry behind ``omnihub_generated.<package>.<python_name>``."""
    catalog = catalog_for(package)
    for model in catalog.models:
        if model.python_name == python_name:
            return model
    from omnihub.errors import ModelNotFoundError

    raise ModelNotFoundError(f"omnihub_generated.{package} has no model {python_name!r}")


def load_model(package: str, python_name: str, *, force_download: bool = False) -> Any:
    """Fetch (download or take from the cache, verified) and load one generated model."""
    from omnihub.hub import fetch
    from omnihub.loaders import load

    entry = entry_for(package, python_name)
    path = fetch(entry, force_download=force_download)
    return load(entry, path)
