"""The catalogue JSON round-trips every entry exactly (the compiler writes, the runtime reads);
entries and catalogues are immutable, hashable, picklable values."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import MappingProxyType

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry, catalog_from_json, catalog_to_json
from omnihub.errors import ConfigurationError
from omnihub.model_file import ModelFile

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
    assert text.endswith("}\n")
    assert json.loads(text)["schema_version"] == 1
    assert pickle.loads(pickle.dumps(catalog)) == catalog
    assert hash(catalog_from_json(text)) == hash(catalog)


def _entry(**changes: object) -> ModelEntry:
    fields: dict[str, object] = {
        "name": "m",
        "python_name": "m",
        "namespace": "NS",
        "package": "pkg",
        "framework": Framework.ONNX,
        "model_type": ModelType.COMP_GRAPH,
        "format": Format.RAW,
        "documentation": "doc",
        "file": "m.bin",
        **changes,
    }
    return ModelEntry(**fields)  # type: ignore[arg-type]


def test_the_json_layout_leaves_defaults_out() -> None:
    catalog = Catalog(namespace="NS", package="pkg", models=(_entry(size=0, tags=("a",)),))
    assert catalog_to_json(catalog) == (
        "{\n"
        ' "models": [\n'
        "  {\n"
        '   "documentation": "doc",\n'
        '   "file": "m.bin",\n'
        '   "format": "raw",\n'
        '   "framework": "onnx",\n'
        '   "model_type": "COMP_GRAPH",\n'
        '   "name": "m",\n'
        '   "namespace": "NS",\n'
        '   "package": "pkg",\n'
        '   "python_name": "m",\n'
        '   "size": 0,\n'
        '   "tags": [\n'
        '    "a"\n'
        "   ]\n"
        "  }\n"
        " ],\n"
        ' "namespace": "NS",\n'
        ' "package": "pkg",\n'
        ' "schema_version": 1\n'
        "}\n"
    )


def test_fields_defaults_and_constructor_conversions() -> None:
    names = [f.name for f in attrs.fields(ModelEntry)]
    assert names[:3] == ["name", "python_name", "namespace"]
    assert names[-2:] == ["metadata", "source"]
    assert [f.name for f in attrs.fields(Catalog)] == [
        "namespace",
        "package",
        "models",
        "schema_version",
    ]
    assert attrs.fields(ModelEntry).pretrained.default is True
    assert attrs.fields(ModelEntry).tags.default == ()
    required = [f.name for f in attrs.fields(ModelEntry) if f.default is attrs.NOTHING]
    assert required == names[:9]
    assert not hasattr(_entry(), "__dict__")  # slotted
    entry = _entry(tags=["a", "b"], metadata=MappingProxyType({"k": 1}))
    assert entry.tags == ("a", "b")
    assert type(entry.metadata) is dict
    assert entry.metadata == {"k": 1}
    assert _entry().metadata == {}
    assert _entry().metadata is not _entry().metadata
    assert Catalog(namespace="N", package="p", models=[entry]).models == (entry,)
    with pytest.raises(TypeError):
        ModelEntry("m")  # type: ignore[call-arg]  # keyword-only


def test_entries_are_values() -> None:
    entry = _entry(metadata={"k": "v"}, tags=("t",))
    same = _entry(metadata={"k": "v"}, tags=("t",))
    assert entry == same
    assert entry is not same
    assert hash(entry) == hash(same)
    assert entry != _entry(metadata={"k": "w"})  # metadata is compared...
    assert hash(entry) == hash(_entry(metadata={"k": "w"}, tags=("t",)))  # ...but not hashed
    assert entry != _entry(size=1)
    assert entry.__eq__(attrs.asdict(entry)) is NotImplemented
    assert len({entry, same, _entry()}) == 2
    assert repr(entry).startswith("ModelEntry(name='m', python_name='m', namespace='NS',")
    assert "metadata={'k': 'v'}" in repr(entry)
    assert pickle.loads(pickle.dumps(entry)) == entry


def test_entries_are_immutable() -> None:
    entry = _entry()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        entry.size = 3  # type: ignore[misc]  # mypy rejects it too
    with pytest.raises(AttributeError):  # FrozenInstanceError is an AttributeError
        del entry.name
    with pytest.raises(AttributeError):
        entry.extra = 1  # type: ignore[attr-defined]
    assert entry.size is None


def test_evolve_copies_with_changes_and_converts_alike() -> None:
    entry = _entry(metadata={"k": "v"})
    changed = attrs.evolve(entry, sha256="0" * 64, size=5, tags=["x"])
    assert (changed.sha256, changed.size, changed.tags) == ("0" * 64, 5, ("x",))
    assert attrs.evolve(changed, sha256=None, size=None, tags=()) == entry
    assert changed.metadata == entry.metadata
    assert entry.size is None
    with pytest.raises(TypeError):
        attrs.evolve(entry, nonsense=1)  # type: ignore[call-arg]


def test_model_files_are_values(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"data")
    handle = ModelFile(path, _entry())
    assert handle == ModelFile(path=path, entry=_entry())
    assert hash(handle) == hash(ModelFile(path, _entry()))
    assert handle != ModelFile(path, _entry(size=4))
    assert handle.read_bytes() == b"data"
    assert pickle.loads(pickle.dumps(handle)) == handle
    assert repr(handle) == f"ModelFile(path={path!r}, entry={_entry()!r})"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        handle.path = path  # type: ignore[misc]


def test_wrong_schema_version_names_the_source() -> None:
    with pytest.raises(ConfigurationError, match=r"x\.json: catalogue schema_version 99"):
        catalog_from_json('{"schema_version": 99}', source="x.json")


def test_garbage_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"y\.json: invalid catalogue"):
        catalog_from_json(b"{not json", source="y.json")
    with pytest.raises(ConfigurationError, match=r"y\.json: invalid catalogue"):
        catalog_from_json(b"\xff", source="y.json")
    with pytest.raises(ConfigurationError, match=r"y\.json: invalid catalogue"):
        catalog_from_json("[" * 100_000 + "]" * 100_000, source="y.json")


_GOOD_MODEL = json.loads(catalog_to_json(Catalog(namespace="N", package="p", models=(_entry(),))))[
    "models"
][0]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"models": []}, "invalid catalogue: missing field 'namespace'"),
        (
            {"namespace": "N", "package": "p", "models": [], "extra": 1},
            "invalid catalogue: unknown field(s) 'extra'",
        ),
        ({"namespace": "N", "package": 1, "models": []}, "field 'package': expected a string"),
        ({"namespace": "N", "package": "p", "models": {}}, "'models' is not a list"),
        (
            {
                "namespace": "N",
                "package": "p",
                "models": [_GOOD_MODEL, {**_GOOD_MODEL, "size": "1"}],
            },
            "invalid catalogue entry models[1] 'm': field 'size': expected an integer or null",
        ),
        (
            {"namespace": "N", "package": "p", "models": [_GOOD_MODEL, 3]},
            "invalid catalogue entry models[1]: expected a JSON object, got 3 (int)",
        ),
    ],
)
def test_a_bad_document_names_the_file_and_the_field(
    document: dict[str, object], message: str
) -> None:
    text = json.dumps({"schema_version": 1, **document})
    with pytest.raises(ConfigurationError) as info:
        catalog_from_json(text, source="z/_catalog.json")
    assert str(info.value).startswith("z/_catalog.json: ")
    assert message in str(info.value)


@given(
    st.dictionaries(
        st.sampled_from(["namespace", "package", "models", "extra"]),
        st.none()
        | st.integers()
        | st.text(max_size=3)
        | st.lists(st.just(_GOOD_MODEL), max_size=2),
    )
)
def test_any_document_is_a_catalog_or_a_configuration_error(document: dict[str, object]) -> None:
    text = json.dumps({"schema_version": 1, **document})
    try:
        catalog = catalog_from_json(text, source="d.json")
    except ConfigurationError as exc:
        message = str(exc)
    else:
        message = ""
        assert catalog.namespace == document["namespace"]
        assert len(catalog.models) == len(document["models"])  # type: ignore[arg-type]
    if message:
        assert message.startswith("d.json: invalid catalogue")


def test_public_api_lists_every_lazy_name_and_resolves_it() -> None:
    import omnihub

    assert sorted(omnihub.__all__) == sorted(["__version__", *omnihub._LAZY])
    for name in omnihub.__all__:
        assert getattr(omnihub, name) is not None
