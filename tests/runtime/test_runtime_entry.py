"""omnihub._entry: the entry point generated functions call, on a package made up in tmp_path."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from omnihub import _entry
from omnihub.catalog import CATALOG_FILENAME, Catalog, catalog_from_json, catalog_to_json
from omnihub.errors import ConfigurationError, ModelNotFoundError

from tests.runtime.helpers import entry

PACKAGE = "entrytestpkg"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake ``omnihub_generated.entrytestpkg`` whose catalogue is ``<tmp>/_catalog.json``."""
    module = types.ModuleType(f"omnihub_generated.{PACKAGE}")
    module.__file__ = str(tmp_path / "__init__.py")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    yield tmp_path / CATALOG_FILENAME
    for cache in (_entry._catalogs, _entry._raw_models):
        cache.pop(PACKAGE, None)
    for key in [k for k in _entry._entries if k[0] == PACKAGE]:
        del _entry._entries[key]


def _write(path: Path, n: int) -> Catalog:
    models = tuple(entry(f"m{i}.fb", data=bytes([i]), python_name=f"m{i}") for i in range(n))
    catalog = Catalog(namespace="TestModels", package=PACKAGE, models=models)
    path.write_text(catalog_to_json(catalog), encoding="utf-8")
    return catalog


def test_entry_for_returns_exactly_the_catalogue_entry(package: Path) -> None:
    catalog = _write(package, 50)
    for model in catalog.models:
        assert _entry.entry_for(PACKAGE, model.python_name) == model
    assert _entry.entry_for(PACKAGE, "m7") is _entry.entry_for(PACKAGE, "m7")  # memoized
    # The whole catalogue, when asked for, agrees with the one-entry path.
    assert _entry.catalog_for(PACKAGE) == catalog_from_json(package.read_bytes())


def test_entry_for_an_unknown_name_is_not_found(package: Path) -> None:
    _write(package, 3)
    with pytest.raises(ModelNotFoundError, match=r"entrytestpkg has no model 'nope'"):
        _entry.entry_for(PACKAGE, "nope")


def test_a_broken_entry_is_a_configuration_error_naming_the_file(package: Path) -> None:
    _write(package, 3)
    data = json.loads(package.read_text(encoding="utf-8"))
    data["models"][1]["framework"] = "tensorflow"
    del data["models"][2]["file"]
    package.write_text(json.dumps(data), encoding="utf-8")
    assert _entry.entry_for(PACKAGE, "m0").file == "m0.fb"
    for name in ("m1", "m2"):
        with pytest.raises(ConfigurationError, match="invalid catalogue entry") as info:
            _entry.entry_for(PACKAGE, name)
        assert str(package) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema_version": 99, "models": []}', "schema_version 99"),
        ('{"schema_version": 1, "models": {}}', "'models' is not a list"),
        ("[1, 2]", "not a JSON object"),
        ("{not json", "invalid catalogue"),
    ],
)
def test_a_bad_catalogue_file_is_a_configuration_error(
    package: Path, text: str, message: str
) -> None:
    package.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as info:
        _entry.entry_for(PACKAGE, "m0")
    assert str(package) in str(info.value)
