"""Catalogue entries: the machine-readable description of every compiled model.

The compiler writes one ``_catalog.json`` beside each generated namespace package; the
runtime reads it to resolve, download and load a model, and to list and search models
without importing the generated modules. :class:`ModelEntry` is the single schema both
sides share, so they cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from omnihub._enums import Format, Framework, ModelType

__all__ = [
    "CATALOG_FILENAME",
    "CATALOG_SCHEMA_VERSION",
    "Catalog",
    "ModelEntry",
    "catalog_from_json",
    "catalog_to_json",
]

#: The file name of a namespace's catalogue inside its generated package.
CATALOG_FILENAME = "_catalog.json"
#: Bumped whenever the JSON layout changes incompatibly.
CATALOG_SCHEMA_VERSION = 1


_Scalar = str | int | float | bool


@attrs.frozen(kw_only=True)
class ModelEntry:
    """One model, as declared in spec/ and compiled into a generated function.

    ``file`` is the path of the model file relative to its framework directory: the cache
    path is ``$OMNIHUB_HOME/<framework>/<file>`` exactly as in DL4J, and the omnihub zoo
    serves it at ``$OMNIHUB_URL/<framework>/<file>``. ``url`` is the canonical absolute URL
    from the spec (for Hugging Face models, None: the repository resolves it).
    """

    name: str  # the name the spec declared, e.g. "resnet18"
    python_name: str  # the generated function's name
    namespace: str  # the Kotlin FrameworkNamespace name, e.g. "SameDiffModels"
    package: str  # the generated package, omnihub_generated.<package>
    framework: Framework
    model_type: ModelType
    format: Format
    documentation: str
    file: str
    url: str | None = None
    pretrained: bool = True
    repository: str | None = None  # None: the fallback chain (ADR 0076)
    hugging_face_id: str | None = None
    file_pattern: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    factory: str | None = None  # "module:callable" that rebuilds the model from the file
    metadata: Mapping[str, _Scalar] = attrs.field(factory=dict)
    source: str | None = None  # "spec/<file>.py:<line>" the entry came from


@attrs.frozen(kw_only=True)
class Catalog:
    """All models of one generated namespace package."""

    namespace: str
    package: str
    models: tuple[ModelEntry, ...]
    schema_version: int = CATALOG_SCHEMA_VERSION

    def by_python_name(self) -> dict[str, ModelEntry]:
        """Index the models by generated function name."""
        return {m.python_name: m for m in self.models}


_converter = cattrs.Converter(omit_if_default=True)


def _structure_scalar(value: object, _type: object) -> _Scalar:
    if not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"metadata values must be str, int, float or bool, not {value!r}")
    return value


_converter.register_structure_hook(_Scalar, _structure_scalar)


def catalog_to_json(catalog: Catalog) -> str:
    """Serialize deterministically (sorted keys, fixed indentation, trailing newline)."""
    data: dict[str, Any] = _converter.unstructure(catalog)
    data["schema_version"] = catalog.schema_version
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def catalog_from_json(text: str | bytes, *, source: str | Path = "<catalogue>") -> Catalog:
    """Parse a catalogue, raising :class:`~omnihub.errors.ConfigurationError` naming ``source``."""
    from omnihub.errors import ConfigurationError

    try:
        data = json.loads(text)
        version = data.get("schema_version")
        if version != CATALOG_SCHEMA_VERSION:
            raise ConfigurationError(
                f"{source}: catalogue schema_version {version!r}, expected {CATALOG_SCHEMA_VERSION}"
            )
        return _converter.structure(data, Catalog)
    except ConfigurationError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError) as exc:
        raise ConfigurationError(f"{source}: invalid catalogue: {exc}") from exc
