"""A fast writer for ``_catalog.json`` that produces exactly ``omnihub.catalog.catalog_to_json``.

``catalog_to_json`` goes through ``json.dumps(indent=1)``, whose pure-Python encoder takes
~70 ms per 1,000 models. This writer serialises each scalar with the C-accelerated
``json.dumps`` and lays out the (fixed, known) structure itself. Tests check byte equality
with ``catalog_to_json`` on hypothesis-generated catalogues; small catalogues simply use
``catalog_to_json``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import attrs
from omnihub.catalog import Catalog, ModelEntry, catalog_to_json

__all__ = ["catalog_json"]

_SMALL = 200


def _defaults() -> list[tuple[str, object, bool]]:
    """(name, default value, required) of every ModelEntry field, sorted by name."""
    fields = attrs.fields(ModelEntry)
    required = {f.name for f in fields if f.default is attrs.NOTHING}
    # An entry with placeholders for the required fields holds every default (factories run).
    placeholders: dict[str, Any] = dict.fromkeys(required, "")
    probe = ModelEntry(**placeholders)
    return sorted((f.name, getattr(probe, f.name), f.name in required) for f in fields)


_DEFAULTS = _defaults()
_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _value(value: object, indent: str) -> str:
    if isinstance(value, enum.Enum):
        return _dumps(value.value)
    if isinstance(value, (tuple, list)):
        if not value:
            return "[]"
        inner = indent + " "
        items = ",\n".join(inner + _value(v, inner) for v in value)
        return f"[\n{items}\n{indent}]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        inner = indent + " "
        items = ",\n".join(f"{inner}{_dumps(k)}: {_value(value[k], inner)}" for k in sorted(value))
        return f"{{\n{items}\n{indent}}}"
    return _dumps(value)


def _entry(entry: ModelEntry) -> str:
    parts = []
    for name, default, required in _DEFAULTS:
        value = getattr(entry, name)
        if not required and value == default:
            continue
        parts.append(f'   "{name}": {_value(value, "   ")}')
    return "  {\n" + ",\n".join(parts) + "\n  }"


def catalog_json(catalog: Catalog) -> str:
    """Serialise ``catalog`` exactly as ``catalog_to_json`` does, faster for big namespaces."""
    if len(catalog.models) < _SMALL:
        return catalog_to_json(catalog)
    models = ",\n".join(_entry(m) for m in catalog.models)
    return (
        "{\n"
        f' "models": [\n{models}\n ],\n'
        f' "namespace": {_dumps(catalog.namespace)},\n'
        f' "package": {_dumps(catalog.package)},\n'
        f' "schema_version": {catalog.schema_version}\n'
        "}\n"
    )
