"""Search the compiled catalogues like DJL's ``Criteria``, without importing generated code.

Every generated namespace package ``omnihub_generated.<package>`` ships a ``_catalog.json``.
Several zoos may be installed side by side (``omnihub_generated`` is a PEP 420 namespace
package), so discovery walks every ``omnihub_generated`` directory reachable from
``sys.path`` -- plus the locations the import system knows about, for editable installs --
and reads the catalogues as data. The first directory on the path wins for a package
present twice, exactly as ``import`` would resolve it.

``list_models(criteria)`` returns the matching entries; ``load(criteria)`` fetches and
loads the single match through ``omnihub.hub.fetch`` and ``omnihub.loaders.load``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import attrs

from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import CATALOG_FILENAME, Catalog, ModelEntry, catalog_from_json
from omnihub.errors import ConfigurationError, ModelNotFoundError, OmnihubError

__all__ = [
    "GENERATED_ROOT",
    "AmbiguousModelError",
    "Criteria",
    "catalog_dirs",
    "find_catalogs",
    "list_models",
    "load",
    "qualified_name",
    "select_one",
]

#: The top-level (namespace) package every compiled zoo installs its packages under.
GENERATED_ROOT = "omnihub_generated"

_GLOB_CHARS = frozenset("*?[")


class AmbiguousModelError(OmnihubError, LookupError):
    """More than one catalogue entry matches a request that needs exactly one.

    ``candidates`` holds the matching entries so callers can narrow the request.
    """

    def __init__(self, message: str, candidates: Sequence[ModelEntry]) -> None:
        super().__init__(message)
        self.candidates: tuple[ModelEntry, ...] = tuple(candidates)


def qualified_name(entry: ModelEntry) -> str:
    """Return ``<package>.<python_name>``, the unambiguous name of an installed model."""
    return f"{entry.package}.{entry.python_name}"


_E = TypeVar("_E", Framework, ModelType, Format)


def _to_enum(enum_type: type[_E], value: object) -> _E | None:
    if value is None or isinstance(value, enum_type):
        return value
    if isinstance(value, str):  # accept any case and the member name: "onnx", "ONNX"
        for member in enum_type:
            if value.casefold() in (member.value.casefold(), member.name.casefold()):
                return member
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum_type)
        raise ConfigurationError(
            f"unknown {enum_type.__name__.lower()} {value!r}; expected one of: {choices}"
        ) from None


def _to_framework(value: object) -> Framework | None:
    return _to_enum(Framework, value)


def _to_model_type(value: object) -> ModelType | None:
    return _to_enum(ModelType, value)


def _to_format(value: object) -> Format | None:
    return _to_enum(Format, value)


def _tuple_of_str(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):  # a lone tag, not its characters
        return (value,)
    return tuple(value)


def _tuple_of_filters(
    value: Iterable[Callable[[ModelEntry], bool]] | Callable[[ModelEntry], bool],
) -> tuple[Callable[[ModelEntry], bool], ...]:
    if callable(value):
        return (value,)
    return tuple(value)


def _name_matches(pattern: str, entry: ModelEntry) -> bool:
    names = (entry.name, entry.python_name, qualified_name(entry))
    if _GLOB_CHARS.isdisjoint(pattern):
        return pattern in names
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


@attrs.frozen(kw_only=True)
class Criteria:
    """What to look for in the installed catalogues; every field left as None matches all.

    - ``framework``, ``model_type``, ``format``: an enum member or its string value.
    - ``name``: matched against the spec name, the generated function name and
      ``<package>.<python_name>``; exact, or a glob (``*``, ``?``, ``[...]``) if it has one.
    - ``package``: the generated package (``omnihub_generated.<package>``).
    - ``tags``: every listed tag must be present on the entry.
    - ``repository``: the repository the spec pinned the model to.
    - ``filters``: arbitrary predicates on :class:`~omnihub.catalog.ModelEntry`; all must hold.

    Invalid enum strings raise :class:`~omnihub.errors.ConfigurationError` at construction.
    """

    framework: Framework | None = attrs.field(default=None, converter=_to_framework)
    name: str | None = None
    package: str | None = None
    model_type: ModelType | None = attrs.field(default=None, converter=_to_model_type)
    format: Format | None = attrs.field(default=None, converter=_to_format)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    repository: str | None = None
    filters: tuple[Callable[[ModelEntry], bool], ...] = attrs.field(
        default=(), converter=_tuple_of_filters
    )

    def matches(self, entry: ModelEntry) -> bool:
        """Return whether ``entry`` satisfies every criterion."""
        if self.framework is not None and entry.framework is not self.framework:
            return False
        if self.model_type is not None and entry.model_type is not self.model_type:
            return False
        if self.format is not None and entry.format is not self.format:
            return False
        if self.package is not None and entry.package != self.package:
            return False
        if self.repository is not None and entry.repository != self.repository:
            return False
        if self.name is not None and not _name_matches(self.name, entry):
            return False
        if self.tags and not set(self.tags).issubset(entry.tags):
            return False
        return all(predicate(entry) for predicate in self.filters)

    def describe(self) -> str:
        """A short human-readable rendering, used in error messages."""
        parts = [
            f"{field}={value}"
            for field, value in (
                ("framework", self.framework),
                ("model_type", self.model_type),
                ("format", self.format),
            )
            if value is not None
        ]
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        if self.package is not None:
            parts.append(f"package={self.package!r}")
        if self.tags:
            parts.append(f"tags={list(self.tags)!r}")
        if self.repository is not None:
            parts.append(f"repository={self.repository!r}")
        if self.filters:
            parts.append(f"{len(self.filters)} filter(s)")
        return ", ".join(parts) if parts else "any model"


def catalog_dirs(path: Sequence[str] | None = None) -> list[Path]:
    """Return every existing ``omnihub_generated`` directory, in import-resolution order.

    ``path`` defaults to ``sys.path`` (with ``""`` meaning the current directory); when it
    is the default, the locations the import system reports for ``omnihub_generated``
    (editable installs use custom finders) are appended.
    """
    found: list[Path] = []
    seen: set[str] = set()

    def add(directory: Path) -> None:
        key = os.path.normcase(os.path.realpath(directory))
        if key not in seen and directory.is_dir():
            seen.add(key)
            found.append(directory)

    for entry in sys.path if path is None else path:
        add(Path(entry or os.curdir) / GENERATED_ROOT)
    if path is None:
        for location in _import_locations():
            add(Path(location))
    return found


def _import_locations() -> list[str]:
    try:
        spec = importlib.util.find_spec(GENERATED_ROOT)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [str(location) for location in spec.submodule_search_locations]


def find_catalogs(path: Sequence[str] | None = None) -> list[tuple[Path, Catalog]]:
    """Read every installed catalogue: ``(path of _catalog.json, Catalog)`` sorted by package.

    A package found in several directories is taken from the first one (as ``import`` would).
    A malformed catalogue raises :class:`~omnihub.errors.ConfigurationError` naming its file.
    """
    catalogs: dict[str, tuple[Path, Catalog]] = {}
    for directory in catalog_dirs(path):
        for package_dir in sorted(directory.iterdir()):
            if package_dir.name in catalogs or not package_dir.name.isidentifier():
                continue
            catalog_file = package_dir / CATALOG_FILENAME
            if not catalog_file.is_file():
                continue
            catalog = catalog_from_json(catalog_file.read_bytes(), source=catalog_file)
            catalogs[package_dir.name] = (catalog_file, catalog)
    return [catalogs[name] for name in sorted(catalogs)]


def list_models(
    criteria: Criteria | None = None, *, path: Sequence[str] | None = None
) -> list[ModelEntry]:
    """Return the installed models matching ``criteria`` (all of them for None).

    The result is sorted by package, then generated function name. ``path`` overrides
    the directories searched (default ``sys.path``).
    """
    wanted = criteria if criteria is not None else Criteria()
    models = [
        entry
        for _file, catalog in find_catalogs(path)
        for entry in catalog.models
        if wanted.matches(entry)
    ]
    models.sort(key=lambda entry: (entry.package, entry.python_name))
    return models


def select_one(criteria: Criteria, models: Sequence[ModelEntry]) -> ModelEntry:
    """Return the single entry of ``models`` or raise a typed error naming the candidates."""
    if not models:
        raise ModelNotFoundError(f"no installed model matches {criteria.describe()}")
    if len(models) > 1:
        names = ", ".join(qualified_name(entry) for entry in models[:20])
        more = f" and {len(models) - 20} more" if len(models) > 20 else ""
        raise AmbiguousModelError(
            f"{len(models)} models match {criteria.describe()}: {names}{more}; "
            "narrow the criteria (e.g. name='<package>.<python_name>')",
            models,
        )
    return models[0]


def load(
    criteria: Criteria, *, force_download: bool = False, path: Sequence[str] | None = None
) -> object:
    """Fetch and load the one installed model matching ``criteria``.

    Raises :class:`~omnihub.errors.ModelNotFoundError` when nothing matches and
    :class:`AmbiguousModelError` (listing the candidates) when several do.
    """
    entry = select_one(criteria, list_models(criteria, path=path))
    from omnihub.hub import fetch
    from omnihub.loaders import load as load_file

    return load_file(entry, fetch(entry, force_download=force_download))
