"""The catalogue JSON round-trips every entry exactly (the compiler writes, the runtime reads)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry, catalog_from_json, catalog_to_json
from omnihub.errors import ConfigurationError

_text = st.text(min_size=1, max_size=40)
_scalar = st.one_of(st.text(max_size=10), st.integers(), st.booleans())

entries = st.builds(
    ModelEntry,
    name=_text,
    python_name=st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
    namespace=_text,
    package=st.just("pkg"),
    framework=st.sampled_from(Framework),
    model_type=st.sampled_from(ModelType),
    format=st.sampled_from(Format),
    documentation=_text,
    file=_text,
    url=st.none() | _text,
    sha256=st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    size=st.none() | st.integers(min_value=0),
    tags=st.lists(_text, max_size=3).map(tuple),
    metadata=st.dictionaries(st.text(max_size=8), _scalar, max_size=3),
)


@given(st.lists(entries, max_size=5))
def test_catalog_json_round_trips(models: list[ModelEntry]) -> None:
    catalog = Catalog(namespace="NS", package="pkg", models=tuple(models))
    text = catalog_to_json(catalog)
    assert catalog_from_json(text) == catalog
    assert catalog_to_json(catalog_from_json(text)) == text  # deterministic


def test_wrong_schema_version_names_the_source() -> None:
    with pytest.raises(ConfigurationError, match=r"x\.json: catalogue schema_version 99"):
        catalog_from_json('{"schema_version": 99}', source="x.json")


def test_garbage_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"y\.json: invalid catalogue"):
        catalog_from_json(b"{not json", source="y.json")


def test_public_api_lists_every_lazy_name_and_resolves_it() -> None:
    import omnihub

    assert sorted(omnihub.__all__) == sorted(["__version__", *omnihub._LAZY])
    for name in omnihub.__all__:
        assert getattr(omnihub, name) is not None
