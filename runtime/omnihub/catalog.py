"""Catalogue entries: the machine-readable description of every compiled model.

The compiler writes one ``_catalog.json`` beside each generated namespace package; the
runtime reads it to resolve, download and load a model, and to list and search models
without importing the generated modules. :class:`ModelEntry` is the single schema both
sides share, so they cannot drift apart.

The classes are frozen, slotted attrs classes; one cattrs converter (:func:`_converter`,
imported when a catalogue is first read or written) maps them to and from JSON: a field
equal to its default is left out, enums are written as their values, and reading rejects
unknown fields, missing fields and wrong JSON types (no coercion: ``"5"`` is not a size) with
a :class:`~omnihub.errors.ConfigurationError` naming the file, the model and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import Enum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import attrs

from omnihub._enums import Format, Framework, ModelType
from omnihub.errors import ConfigurationError

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
    "entry_to_dict",
    "raw_models",
]

#: The file name of a namespace's catalogue inside its generated package.
CATALOG_FILENAME = "_catalog.json"
#: Bumped whenever the JSON layout changes incompatibly.
CATALOG_SCHEMA_VERSION = 1

#: A metadata value: what a JSON scalar can hold.
Scalar: TypeAlias = str | int | float | bool


def _tags(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _metadata(value: Mapping[str, Scalar]) -> dict[str, Scalar]:
    return dict(value)


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
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    factory: str | None = None  # "module:callable" that rebuilds the model from the file
    # A plain dict (so entries pickle): compared by ``==`` but left out of the hash.
    metadata: Mapping[str, Scalar] = attrs.field(factory=dict, converter=_metadata, hash=False)
    source: str | None = None  # "spec/<file>.py:<line>" the entry came from


def _models(value: Iterable[ModelEntry]) -> tuple[ModelEntry, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Catalog:
    """All models of one generated namespace package."""

    namespace: str
    package: str
    models: tuple[ModelEntry, ...] = attrs.field(converter=_models)
    schema_version: int = CATALOG_SCHEMA_VERSION

    def by_python_name(self) -> dict[str, ModelEntry]:
        """Index the models by generated function name."""
        return {m.python_name: m for m in self.models}


# -- JSON ------------------------------------------------------------------------------------

#: At most this many problems are listed in one error message.
_SHOWN_PROBLEMS = 5

_T = TypeVar("_T")


def _show(value: object) -> str:
    """A short description of a wrong value, for an error message."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if isinstance(value, str) else f"{text} ({type(value).__name__})"


def _exactly(kind: type[_T], expected: str) -> Callable[[object, object], _T]:
    """A structure hook accepting only JSON values of ``kind`` itself (no coercion, no bool
    for an int)."""

    def structure(value: object, _type: object) -> _T:
        if type(value) is not kind:
            raise TypeError(f"expected {expected}, got {_show(value)}")
        return value

    return structure


def _is(target: object) -> Callable[[object], bool]:
    """A cattrs predicate: the type to structure is ``target``."""
    return lambda kind: kind == target


def _or_null(hook: Callable[[object, object], _T]) -> Callable[[object, object], _T | None]:
    """``hook``, letting JSON null through as None."""

    def structure(value: object, kind: object) -> _T | None:
        return None if value is None else hook(value, kind)

    return structure


def _enum_hook(kind: type[Enum]) -> Callable[[object, object], Enum]:
    members = {member.value: member for member in kind}
    expected = "one of " + ", ".join(repr(v) for v in members)

    def structure(value: object, _type: object) -> Enum:
        member = members.get(value) if type(value) is str else None
        if member is None:
            raise ValueError(f"expected {expected}, got {_show(value)}")
        return member

    return structure


def _enum_value(member: Enum) -> object:
    return member.value


def _structure_tags(value: object, _type: object) -> tuple[str, ...]:
    if type(value) is not list:
        raise TypeError(f"expected a list of strings, got {_show(value)}")
    for i, tag in enumerate(value):
        if type(tag) is not str:
            raise TypeError(f"item {i}: expected a string, got {_show(tag)}")
    return tuple(value)


def _structure_metadata(value: object, _type: object) -> dict[str, Scalar]:
    if type(value) is not dict:
        raise TypeError(f"expected an object of strings, numbers and booleans, got {_show(value)}")
    for key, item in value.items():
        if type(key) is not str:
            raise TypeError(f"expected string keys, got {_show(key)}")
        if type(item) not in (str, int, float, bool):
            raise TypeError(f"key {key!r}: expected a string, number or boolean, got {_show(item)}")
    return value


@cache
def _converter() -> cattrs.Converter:
    """The converter for catalogue JSON (built once; imports cattrs)."""
    import cattrs
    from cattrs.gen import make_dict_structure_fn

    converter = cattrs.Converter(
        forbid_extra_keys=True, omit_if_default=True, detailed_validation=True
    )
    converter.register_structure_hook(str, _exactly(str, "a string"))
    converter.register_structure_hook(int, _exactly(int, "an integer"))
    converter.register_structure_hook(bool, _exactly(bool, "true or false"))
    for kind, expected in ((str, "a string or null"), (int, "an integer or null")):
        converter.register_structure_hook_func(_is(kind | None), _or_null(_exactly(kind, expected)))
    for kind in (Framework, ModelType, Format):
        converter.register_structure_hook(kind, _enum_hook(kind))
        converter.register_unstructure_hook(kind, _enum_value)
    # generic aliases and unions are matched by equality (singledispatch takes classes only)
    converter.register_structure_hook_func(_is(tuple[str, ...]), _structure_tags)
    converter.register_structure_hook_func(_is(Mapping[str, Scalar]), _structure_metadata)
    entry = make_dict_structure_fn(ModelEntry, converter)

    def structure_entry(value: object, kind: type[ModelEntry]) -> ModelEntry:
        if type(value) is not dict:
            raise TypeError(f"expected a JSON object, got {_show(value)}")
        return entry(value, kind)

    converter.register_structure_hook(ModelEntry, structure_entry)
    return converter


def entry_to_dict(entry: ModelEntry) -> dict[str, Any]:
    """``entry`` as a JSON-ready dict, as the catalogue holds it.

    A field equal to its default is left out, enums become their values, ``tags`` a list
    and ``metadata`` a plain dict; :func:`entry_from_dict` is the inverse.
    """
    data: dict[str, Any] = _converter().unstructure(entry)
    if "tags" in data:
        data["tags"] = list(data["tags"])
    return data


def catalog_to_json(catalog: Catalog) -> str:
    """Serialize deterministically (sorted keys, fixed indentation, trailing newline)."""
    data = {
        "namespace": catalog.namespace,
        "package": catalog.package,
        "models": [entry_to_dict(m) for m in catalog.models],
        "schema_version": catalog.schema_version,
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _load_json(text: str | bytes, source: str | Path) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigurationError(f"{source}: invalid catalogue: {exc}") from exc


def _check_version(data: object, source: str | Path) -> dict[str, Any]:
    if type(data) is not dict:
        raise ConfigurationError(f"{source}: invalid catalogue: not a JSON object")
    version = data.get("schema_version")
    if version != CATALOG_SCHEMA_VERSION:
        raise ConfigurationError(
            f"{source}: catalogue schema_version {version!r}, expected {CATALOG_SCHEMA_VERSION}"
        )
    return data


def _models_list(data: dict[str, Any], source: str | Path) -> list[Any]:
    models = data.get("models")
    if type(models) is not list:
        raise ConfigurationError(f"{source}: invalid catalogue: 'models' is not a list")
    return models


def raw_models(text: str | bytes, *, source: str | Path = "<catalogue>") -> list[Any]:
    """The catalogue's ``models`` as parsed JSON, unstructured (schema version checked).

    With :func:`entry_from_dict` this lets a caller that needs one model of a large
    catalogue structure only that one. Raises :class:`~omnihub.errors.ConfigurationError`.
    """
    return _models_list(_check_version(_load_json(text, source), source), source)


_Path: TypeAlias = tuple[str | int, ...]


def _leaves(exc: BaseException, path: _Path) -> Iterator[tuple[_Path, BaseException]]:
    """Every leaf error of a cattrs validation error, with the JSON path it happened at."""
    from cattrs.errors import (
        AttributeValidationNote,
        ClassValidationError,
        IterableValidationError,
    )

    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            step = note.name if isinstance(note, AttributeValidationNote) else note.index
            yield from _leaves(inner, (*path, step))
        for inner in without:
            yield from _leaves(inner, path)
    else:
        yield path, exc


def _problem(path: _Path, exc: BaseException) -> str:
    """One problem, e.g. ``field 'size': expected an integer, got '5'``."""
    from cattrs.errors import ForbiddenExtraKeysError

    if isinstance(exc, ForbiddenExtraKeysError):
        names = ", ".join(repr(k) for k in sorted(exc.extra_fields))
        return f"unknown field(s) {names}"
    field = ".".join(str(p) for p in path)
    if isinstance(exc, KeyError):
        return f"missing field {field!r}"
    return f"field {field!r}: {exc}" if field else str(exc)


def _which(model: object, index: int | None) -> str:
    """How an error message names a model: its index in the catalogue and its name."""
    where = "" if index is None else f" models[{index}]"
    if type(model) is dict:
        for key in ("python_name", "name"):
            if type(model.get(key)) is str:
                return f"{where} {model[key]!r}"
    return where


def _invalid(
    exc: Exception, source: str | Path, model: Callable[[int | None], object], prefix: _Path
) -> ConfigurationError:
    """One error naming ``source``, then each problem's model and field (the first few).

    ``model(index)`` is the JSON object of the model at ``index`` (for its name).
    """
    problems: dict[str, list[str]] = {}  # where -> its problems, in order
    for path, leaf in _leaves(exc, prefix):
        if len(path) >= 2 and path[0] == "models" and isinstance(path[1], int):
            where, rest = f"invalid catalogue entry{_which(model(path[1]), path[1])}", path[2:]
        elif path[:1] == ("entry",):  # one entry structured alone, position unknown
            where, rest = f"invalid catalogue entry{_which(model(None), None)}", path[1:]
        else:
            where, rest = "invalid catalogue", path
        problems.setdefault(where, []).append(_problem(rest, leaf))
    count = sum(map(len, problems.values()))
    parts, left = [], _SHOWN_PROBLEMS
    for where, found in problems.items():
        if left <= 0:
            break
        parts.append(f"{where}: {', '.join(found[:left])}")
        left -= len(found)
    shown = "; ".join(parts)
    if count > _SHOWN_PROBLEMS:
        shown += f" (and {count - _SHOWN_PROBLEMS} more)"
    return ConfigurationError(f"{source}: {shown}")


def entry_from_dict(
    data: object, *, source: str | Path = "<catalogue>", index: int | None = None
) -> ModelEntry:
    """Structure and validate one model object of a catalogue, exactly as
    :func:`catalog_from_json` does for every model.

    Raises :class:`~omnihub.errors.ConfigurationError` naming ``source``, the model (its
    position ``index`` in the catalogue when given, and its name), the field and what was
    expected.
    """
    from cattrs.errors import BaseValidationError

    try:
        return _converter().structure(data, ModelEntry)
    except (BaseValidationError, TypeError) as exc:
        prefix: _Path = ("entry",) if index is None else ("models", index)
        raise _invalid(exc, source, lambda _index: data, prefix) from None


def catalog_from_json(text: str | bytes, *, source: str | Path = "<catalogue>") -> Catalog:
    """Parse a catalogue, raising :class:`~omnihub.errors.ConfigurationError` naming ``source``,
    and for a bad model its position, name and field."""
    from cattrs.errors import BaseValidationError

    data = _check_version(_load_json(text, source), source)
    models = _models_list(data, source)
    try:
        return _converter().structure(data, Catalog)
    except (BaseValidationError, TypeError) as exc:

        def model(index: int | None) -> object:
            return models[index] if index is not None and 0 <= index < len(models) else None

        raise _invalid(exc, source, model, ()) from None
