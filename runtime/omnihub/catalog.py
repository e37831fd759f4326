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
from typing import TYPE_CHECKING, Any

import attrs

from omnihub._enums import Format, Framework, ModelType

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "CATALOG_FILENAME",
    "CATALOG_SCHEMA_VERSION",
    "Catalog",
    "ModelEntry",
    "catalog_from_json",
    "catalog_to_json",
    "entry_from_dict",
    "raw_models",
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


_converters: list[cattrs.Converter] = []


def _structure_scalar(value: object, _type: object) -> _Scalar:
    if not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"metadata values must be str, int, float or bool, not {value!r}")
    return value


def _converter() -> cattrs.Converter:
    """The (memoized) cattrs converter; cattrs is imported on first use only.

    Processes that only need the entry classes -- every process waiting for another one's
    download, every cache hit -- never pay for importing cattrs.
    """
    if not _converters:
        import cattrs

        converter = cattrs.Converter(omit_if_default=True)
        converter.register_structure_hook(_Scalar, _structure_scalar)
        _converters.append(converter)
    return _converters[0]


def catalog_to_json(catalog: Catalog) -> str:
    """Serialize deterministically (sorted keys, fixed indentation, trailing newline)."""
    data: dict[str, Any] = _converter().unstructure(catalog)
    data["schema_version"] = catalog.schema_version
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _check_version(data: object, source: str | Path) -> dict[str, Any]:
    from omnihub.errors import ConfigurationError

    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: invalid catalogue: not a JSON object")
    version = data.get("schema_version")
    if version != CATALOG_SCHEMA_VERSION:
        raise ConfigurationError(
            f"{source}: catalogue schema_version {version!r}, expected {CATALOG_SCHEMA_VERSION}"
        )
    return data


def raw_models(text: str | bytes, *, source: str | Path = "<catalogue>") -> list[Any]:
    """The catalogue's ``models`` as parsed JSON, unstructured (schema version checked).

    With :func:`entry_from_dict` this lets a caller that needs one model of a large
    catalogue structure only that one. Raises :class:`~omnihub.errors.ConfigurationError`.
    """
    from omnihub.errors import ConfigurationError

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source}: invalid catalogue: {exc}") from exc
    models = _check_version(data, source).get("models")
    if not isinstance(models, list):
        raise ConfigurationError(f"{source}: invalid catalogue: 'models' is not a list")
    return models


_REQUIRED_STR = ("name", "python_name", "namespace", "package", "documentation", "file")
_OPTIONAL_STR = (
    "url",
    "repository",
    "hugging_face_id",
    "file_pattern",
    "revision",
    "sha256",
    "license",
    "factory",
    "source",
)
_ENUMS: tuple[tuple[str, type[Framework | ModelType | Format]], ...] = (
    ("framework", Framework),
    ("model_type", ModelType),
    ("format", Format),
)


def _exact_entry(data: object) -> ModelEntry | None:
    """``data`` as a :class:`ModelEntry` if every field has exactly its declared JSON type.

    The fast path of :func:`entry_from_dict`: a catalogue the compiler wrote always takes it,
    so the first call of a generated function never imports cattrs. It builds only what the
    cattrs converter would build from the same data (unknown keys are ignored, as cattrs
    does); anything it is not sure about -- a missing or mistyped field, an unknown enum
    value, ``True`` for ``size`` -- answers None and the caller lets cattrs decide (and
    word the error).
    """
    if type(data) is not dict:
        return None
    fields: dict[str, Any] = {}
    for key in _REQUIRED_STR:
        value = data.get(key)
        if type(value) is not str:
            return None
        fields[key] = value
    for key, enum_type in _ENUMS:
        value = data.get(key)
        if type(value) is not str or value not in enum_type._value2member_map_:
            return None
        fields[key] = enum_type(value)
    for key in _OPTIONAL_STR:
        if key in data:
            value = data[key]
            if value is not None and type(value) is not str:
                return None
            fields[key] = value
    if "pretrained" in data:
        if type(data["pretrained"]) is not bool:
            return None
        fields["pretrained"] = data["pretrained"]
    if "size" in data:
        size = data["size"]
        if size is not None and type(size) is not int:
            return None
        fields["size"] = size
    if "tags" in data:
        tags = data["tags"]
        if type(tags) not in (list, tuple) or any(type(tag) is not str for tag in tags):
            return None
        fields["tags"] = tuple(tags)
    if "metadata" in data:
        metadata = data["metadata"]
        if type(metadata) is not dict or not all(
            type(k) is str and type(v) in (str, int, float, bool) for k, v in metadata.items()
        ):
            return None
        fields["metadata"] = dict(metadata)
    return ModelEntry(**fields)


def entry_from_dict(data: object, *, source: str | Path = "<catalogue>") -> ModelEntry:
    """Structure and validate one model object of a catalogue, exactly as
    :func:`catalog_from_json` does for every model.

    Well-typed data (all a compiled catalogue holds) is structured without cattrs, the rest
    by the same cattrs converter as :func:`catalog_from_json`, so the result and every error
    are the same either way.
    """
    entry = _exact_entry(data)
    if entry is not None:
        return entry
    import cattrs

    from omnihub.errors import ConfigurationError

    try:
        entry = _converter().structure(data, ModelEntry)
    except (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError) as exc:
        raise ConfigurationError(f"{source}: invalid catalogue entry: {exc}") from exc
    return entry


def catalog_from_json(text: str | bytes, *, source: str | Path = "<catalogue>") -> Catalog:
    """Parse a catalogue, raising :class:`~omnihub.errors.ConfigurationError` naming ``source``."""
    import cattrs

    from omnihub.errors import ConfigurationError

    converter = _converter()
    try:
        data = _check_version(json.loads(text), source)
        return converter.structure(data, Catalog)
    except ConfigurationError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError) as exc:
        raise ConfigurationError(f"{source}: invalid catalogue: {exc}") from exc
