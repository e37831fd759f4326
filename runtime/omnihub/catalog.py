"""Catalogue entries: the machine-readable description of every compiled model.

The compiler writes one ``_catalog.json`` beside each generated namespace package; the
runtime reads it to resolve, download and load a model, and to list and search models
without importing the generated modules. :class:`ModelEntry` is the single schema both
sides share, so they cannot drift apart.

The entry classes are :class:`~omnihub._value.Value` records and the JSON is structured
and validated here by hand, not by attrs/cattrs: the first call of a generated function
builds an entry, and importing those libraries would cost every process ~20-30 ms of CPU
(issue 5, target 6; see :mod:`omnihub._value`). The JSON layout is what a cattrs
converter with ``omit_if_default`` produced: a field equal to its default is left out,
enums are written as their values.
"""

from __future__ import annotations

import json
from enum import Enum
from types import MappingProxyType

from omnihub._enums import Format, Framework, ModelType
from omnihub._value import Value, defaults, store

# Not ``from typing import TYPE_CHECKING``: importing typing costs several ms per process.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, TypeAlias

    from omnihub.errors import ConfigurationError

    _Scalar: TypeAlias = str | int | float | bool

__all__ = [
    "CATALOG_FILENAME",
    "CATALOG_SCHEMA_VERSION",
    "Catalog",
    "ModelEntry",
    "catalog_from_json",
    "catalog_to_json",
    "entry_from_dict",
    "entry_to_dict",
    "raw_models",
]

#: The file name of a namespace's catalogue inside its generated package.
CATALOG_FILENAME = "_catalog.json"
#: Bumped whenever the JSON layout changes incompatibly.
CATALOG_SCHEMA_VERSION = 1

#: The default of :attr:`ModelEntry.metadata` (immutable, so it can be shared).
_NO_METADATA: Mapping[str, _Scalar] = MappingProxyType({})


class ModelEntry(Value):
    """One model, as declared in spec/ and compiled into a generated function.

    ``file`` is the path of the model file relative to its framework directory: the cache
    path is ``$OMNIHUB_HOME/<framework>/<file>`` exactly as in DL4J, and the omnihub zoo
    serves it at ``$OMNIHUB_URL/<framework>/<file>``. ``url`` is the canonical absolute URL
    from the spec (for Hugging Face models, None: the repository resolves it).
    """

    __slots__ = (
        "name",
        "python_name",
        "namespace",
        "package",
        "framework",
        "model_type",
        "format",
        "documentation",
        "file",
        "url",
        "pretrained",
        "repository",
        "hugging_face_id",
        "file_pattern",
        "revision",
        "sha256",
        "size",
        "license",
        "tags",
        "factory",
        "metadata",
        "source",
    )
    # A plain dict is stored: compared by ``==`` but left out of the hash.
    _unhashed = frozenset({"metadata"})

    name: str  # the name the spec declared, e.g. "resnet18"
    python_name: str  # the generated function's name
    namespace: str  # the Kotlin FrameworkNamespace name, e.g. "SameDiffModels"
    package: str  # the generated package, omnihub_generated.<package>
    framework: Framework
    model_type: ModelType
    format: Format
    documentation: str
    file: str
    url: str | None
    pretrained: bool
    repository: str | None  # None: the fallback chain (ADR 0076)
    hugging_face_id: str | None
    file_pattern: str | None
    revision: str | None
    sha256: str | None
    size: int | None
    license: str | None
    tags: tuple[str, ...]
    factory: str | None  # "module:callable" that rebuilds the model from the file
    metadata: Mapping[str, _Scalar]
    source: str | None  # "spec/<file>.py:<line>" the entry came from

    def __init__(
        self,
        *,
        name: str,
        python_name: str,
        namespace: str,
        package: str,
        framework: Framework,
        model_type: ModelType,
        format: Format,
        documentation: str,
        file: str,
        url: str | None = None,
        pretrained: bool = True,
        repository: str | None = None,
        hugging_face_id: str | None = None,
        file_pattern: str | None = None,
        revision: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        license: str | None = None,
        tags: tuple[str, ...] = (),
        factory: str | None = None,
        metadata: Mapping[str, _Scalar] = _NO_METADATA,
        source: str | None = None,
    ) -> None:
        tags = tuple(tags)
        metadata = dict(metadata)
        store(self, locals())


class Catalog(Value):
    """All models of one generated namespace package."""

    __slots__ = ("namespace", "package", "models", "schema_version")

    namespace: str
    package: str
    models: tuple[ModelEntry, ...]
    schema_version: int

    def __init__(
        self,
        *,
        namespace: str,
        package: str,
        models: tuple[ModelEntry, ...],
        schema_version: int = CATALOG_SCHEMA_VERSION,
    ) -> None:
        models = tuple(models)
        store(self, locals())

    def by_python_name(self) -> dict[str, ModelEntry]:
        """Index the models by generated function name."""
        return {m.python_name: m for m in self.models}


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
_SCALARS = (str, int, float, bool)

#: ``field -> default`` of the optional fields of an entry (left out of the JSON when equal).
_ENTRY_DEFAULTS: dict[str, Any] = defaults(ModelEntry)


def entry_to_dict(entry: ModelEntry) -> dict[str, Any]:
    """``entry`` as a JSON-ready dict, as the catalogue holds it.

    A field equal to its default is left out, enums become their values, ``tags`` a list
    and ``metadata`` a plain dict; :func:`entry_from_dict` is the inverse.
    """
    result: dict[str, Any] = {}
    for name in _REQUIRED_STR:
        result[name] = getattr(entry, name)
    for name, _ in _ENUMS:
        value = getattr(entry, name)
        result[name] = value.value if isinstance(value, Enum) else value
    for name, default in _ENTRY_DEFAULTS.items():
        value = getattr(entry, name)
        if value != default:
            if name == "tags":
                value = list(value)
            elif name == "metadata":
                value = dict(value)
            result[name] = value
    return result


def catalog_to_json(catalog: Catalog) -> str:
    """Serialize deterministically (sorted keys, fixed indentation, trailing newline)."""
    data = {
        "namespace": catalog.namespace,
        "package": catalog.package,
        "models": [entry_to_dict(m) for m in catalog.models],
        "schema_version": catalog.schema_version,
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _error(message: str) -> ConfigurationError:
    from omnihub.errors import ConfigurationError

    return ConfigurationError(message)


def _show(value: object) -> str:
    """A short description of a wrong value, for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})" if not isinstance(value, str) else text


def _load_json(text: str | bytes, source: str | Path) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _error(f"{source}: invalid catalogue: {exc}") from exc


def _check_version(data: object, source: str | Path) -> dict[str, Any]:
    if type(data) is not dict:
        raise _error(f"{source}: invalid catalogue: not a JSON object")
    version = data.get("schema_version")
    if version != CATALOG_SCHEMA_VERSION:
        raise _error(
            f"{source}: catalogue schema_version {version!r}, expected {CATALOG_SCHEMA_VERSION}"
        )
    return data


def _models_list(data: dict[str, Any], source: str | Path) -> list[Any]:
    models = data.get("models")
    if type(models) is not list:
        raise _error(f"{source}: invalid catalogue: 'models' is not a list")
    return models


def raw_models(text: str | bytes, *, source: str | Path = "<catalogue>") -> list[Any]:
    """The catalogue's ``models`` as parsed JSON, unstructured (schema version checked).

    With :func:`entry_from_dict` this lets a caller that needs one model of a large
    catalogue structure only that one. Raises :class:`~omnihub.errors.ConfigurationError`.
    """
    return _models_list(_check_version(_load_json(text, source), source), source)


class _Invalid(Exception):
    """One field of an entry is wrong: ``field``, what was ``expected``, the ``value`` found."""

    def __init__(
        self, field: str, expected: str, value: object = None, *, missing: bool = False
    ) -> None:
        super().__init__(field)
        self.field = field
        self.expected = expected
        self.value = value
        self.missing = missing


def _fields_of(data: dict[Any, Any]) -> dict[str, Any]:
    """The constructor arguments of the entry ``data`` describes, or :class:`_Invalid`."""
    result: dict[str, Any] = {}
    for key in _REQUIRED_STR:
        if key not in data:
            raise _Invalid(key, "a string", missing=True)
        value = data[key]
        if type(value) is not str:
            raise _Invalid(key, "a string", value)
        result[key] = value
    for key, enum_type in _ENUMS:
        members = enum_type._value2member_map_
        value = data.get(key)
        member = members.get(value) if type(value) is str else None
        if member is None:
            expected = "one of " + ", ".join(repr(v) for v in members)
            raise _Invalid(key, expected, value, missing=key not in data)
        result[key] = member
    for key in _OPTIONAL_STR:
        if key in data:
            value = data[key]
            if value is not None and type(value) is not str:
                raise _Invalid(key, "a string or null", value)
            result[key] = value
    if "pretrained" in data:
        value = data["pretrained"]
        if type(value) is not bool:
            raise _Invalid("pretrained", "true or false", value)
        result["pretrained"] = value
    if "size" in data:
        value = data["size"]
        if value is not None and type(value) is not int:
            raise _Invalid("size", "an integer or null", value)
        result["size"] = value
    if "tags" in data:
        tags = data["tags"]
        if type(tags) not in (list, tuple):
            raise _Invalid("tags", "a list of strings", tags)
        for i, tag in enumerate(tags):
            if type(tag) is not str:
                raise _Invalid(f"tags[{i}]", "a string", tag)
        result["tags"] = tuple(tags)
    if "metadata" in data:
        metadata = data["metadata"]
        if type(metadata) is not dict:
            raise _Invalid("metadata", "an object of strings, numbers and booleans", metadata)
        for key, value in metadata.items():
            if type(key) is not str:
                raise _Invalid("metadata", "string keys", key)
            if type(value) not in _SCALARS:
                raise _Invalid(f"metadata[{key!r}]", "a string, number or boolean", value)
        result["metadata"] = metadata
    return result


def _which(data: dict[Any, Any], index: int | None) -> str:
    """How an error message names the model: its index and (python) name, when known."""
    where = f" models[{index}]" if index is not None else ""
    for key in ("python_name", "name"):
        name = data.get(key)
        if type(name) is str:
            return f"{where} {name!r}"
    return where


def entry_from_dict(
    data: object, *, source: str | Path = "<catalogue>", index: int | None = None
) -> ModelEntry:
    """Structure and validate one model object of a catalogue, exactly as
    :func:`catalog_from_json` does for every model.

    Every field is checked against its JSON type (``pretrained`` a boolean, ``size`` an
    integer or null, enums one of their values...); unknown keys are ignored. Raises
    :class:`~omnihub.errors.ConfigurationError` naming ``source``, the model (its position
    ``index`` in the catalogue when given, and its name), the field and what was expected.
    """
    prefix = f"{source}: invalid catalogue entry"
    if type(data) is not dict:
        where = f" models[{index}]" if index is not None else ""
        raise _error(f"{prefix}{where}: expected a JSON object, got {_show(data)}")
    try:
        return ModelEntry(**_fields_of(data))
    except _Invalid as bad:
        what = (
            f"missing field {bad.field!r} ({bad.expected})"
            if bad.missing
            else f"field {bad.field!r}: expected {bad.expected}, got {_show(bad.value)}"
        )
        raise _error(f"{prefix}{_which(data, index)}: {what}") from None


def catalog_from_json(text: str | bytes, *, source: str | Path = "<catalogue>") -> Catalog:
    """Parse a catalogue, raising :class:`~omnihub.errors.ConfigurationError` naming ``source``."""
    data = _check_version(_load_json(text, source), source)
    header: dict[str, str] = {}
    for key in ("namespace", "package"):
        value = data.get(key)
        if type(value) is not str:
            what = (
                f"missing field {key!r} (a string)"
                if key not in data
                else f"field {key!r}: expected a string, got {_show(value)}"
            )
            raise _error(f"{source}: invalid catalogue: {what}")
        header[key] = value
    models = tuple(
        entry_from_dict(model, source=source, index=i)
        for i, model in enumerate(_models_list(data, source))
    )
    return Catalog(
        namespace=header["namespace"],
        package=header["package"],
        models=models,
        schema_version=CATALOG_SCHEMA_VERSION,
    )
