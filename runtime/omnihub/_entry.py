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
#: package -> python_name -> that model's JSON object, for :func:`entry_for`.
_raw_models: dict[str, dict[str, Any]] = {}
_entries: dict[tuple[str, str], ModelEntry] = {}


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


def _raw_index(package: str) -> dict[str, Any]:
    """``python_name -> JSON object`` of the package's catalogue (memoized, not structured)."""
    index = _raw_models.get(package)
    if index is None:
        from omnihub.catalog import CATALOG_FILENAME, raw_models

        path = _package_dir(package) / CATALOG_FILENAME
        models = raw_models(path.read_bytes(), source=path)
        index = {}
        for model in models:
            name = model.get("python_name") if isinstance(model, dict) else None
            if isinstance(name, str):
                index.setdefault(name, model)
        _raw_models[package] = index
    return index


def entry_for(package: str, python_name: str) -> ModelEntry:
    """Return the catalogue entry behind ``omnihub_generated.<package>.<python_name>``.

    Only that entry is structured and validated (the file's schema version is checked too):
    the first call of one model of a 10,000-model namespace does not build 10,000 entries.
    """
    entry = _entries.get((package, python_name))
    if entry is not None:
        return entry
    catalog = _catalogs.get(package)
    if catalog is not None:
        for model in catalog.models:
            if model.python_name == python_name:
                _entries[package, python_name] = model
                return model
    else:
        raw = _raw_index(package).get(python_name)
        if raw is not None:
            from omnihub.catalog import CATALOG_FILENAME, entry_from_dict

            source = _package_dir(package) / CATALOG_FILENAME
            entry = entry_from_dict(raw, source=source)
            _entries[package, python_name] = entry
            return entry
    from omnihub.errors import ModelNotFoundError

    raise ModelNotFoundError(f"omnihub_generated.{package} has no model {python_name!r}")


def load_model(package: str, python_name: str, *, force_download: bool = False) -> Any:
    """Fetch (download or take from the cache, verified) and load one generated model.

    A Hugging Face model whose ``file_pattern`` is a glob or None is every matching file of
    the repository (:mod:`omnihub.hf_snapshot`) and returns a ``Snapshot`` (or, with a
    ``factory``, what the factory makes of the snapshot's path).
    """
    entry = entry_for(package, python_name)
    if entry.hugging_face_id:
        from omnihub.hf_snapshot import fetch_snapshot, is_snapshot

        if is_snapshot(entry):
            snapshot = fetch_snapshot(entry, force_download=force_download)
            if not entry.factory:
                return snapshot
            from omnihub.loaders import load

            return load(entry, snapshot.path)  # the factory gets the file or the directory
    from omnihub.hub import fetch
    from omnihub.loaders import load

    path = fetch(entry, force_download=force_download)
    return load(entry, path)
