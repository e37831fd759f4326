"""Test helpers: build small compiled catalogues and zoos in temporary directories."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import CATALOG_FILENAME, Catalog, ModelEntry, catalog_to_json
from omnihub.search import GENERATED_ROOT


def entry(python_name: str, package: str = "pkg", **fields: Any) -> ModelEntry:
    """A ModelEntry with plausible defaults; any field can be overridden."""
    values: dict[str, Any] = {
        "name": python_name,
        "python_name": python_name,
        "namespace": package.title(),
        "package": package,
        "framework": Framework.ONNX,
        "model_type": ModelType.COMP_GRAPH,
        "format": Format.RAW,
        "documentation": f"The {python_name} model.",
        "file": f"{python_name}.bin",
    }
    values.update(fields)
    return ModelEntry(**values)


def write_catalog(root: Path, package: str, models: Iterable[ModelEntry]) -> Path:
    """Write ``root/omnihub_generated/<package>/{__init__.py,_catalog.json}``; return the json."""
    package_dir = root / GENERATED_ROOT / package
    package_dir.mkdir(parents=True, exist_ok=True)
    (package_dir / "__init__.py").write_text(
        "raise ImportError('generated modules must not be imported by search')\n"
    )
    catalog = Catalog(namespace=package.title(), package=package, models=tuple(models))
    path = package_dir / CATALOG_FILENAME
    path.write_text(catalog_to_json(catalog), encoding="utf-8")
    return path


def write_zoo_file(zoo: Path, model: ModelEntry, content: bytes) -> None:
    """Place ``content`` where a zoo serves ``model``: ``<zoo>/<framework>/<file>``."""
    target = zoo / model.framework.value / model.file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def pinned(model: ModelEntry, content: bytes) -> ModelEntry:
    """``model`` with the sha256 and size of ``content`` declared."""
    return attrs.evolve(model, sha256=hashlib.sha256(content).hexdigest(), size=len(content))
