"""omnihub.search: Criteria matching and catalogue discovery over real catalogue trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import omnihub
import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.errors import ConfigurationError, ModelNotFoundError, OmnihubError
from omnihub.search import (
    AmbiguousModelError,
    Criteria,
    catalog_dirs,
    find_catalogs,
    list_models,
    load,
    qualified_name,
    select_one,
)

from .zoo import entry, write_catalog


@pytest.fixture
def zoos(tmp_path: Path) -> list[str]:
    """Two installed zoos (two sys.path entries) sharing the omnihub_generated namespace."""
    first, second = tmp_path / "site1", tmp_path / "site2"
    write_catalog(
        first,
        "samediff",
        [
            entry(
                "resnet18",
                "samediff",
                framework=Framework.SAMEDIFF,
                format=Format.SAMEDIFF,
                model_type=ModelType.SAMEDIFF_PIPELINE,
                tags=("vision", "imagenet"),
            ),
            entry(
                "resnet50",
                "samediff",
                framework=Framework.SAMEDIFF,
                format=Format.SAMEDIFF,
                model_type=ModelType.SAMEDIFF_PIPELINE,
                tags=("vision",),
            ),
        ],
    )
    write_catalog(
        second,
        "onnx",
        [
            entry("resnet18", "onnx", format=Format.ONNX, tags=("vision",), repository="mirror"),
            entry("bert_base", "onnx", name="bert-base", format=Format.ONNX, tags=("text",)),
        ],
    )
    # the same package in a later directory is shadowed by the first, as import would do
    write_catalog(second, "samediff", [entry("shadowed", "samediff")])
    return [str(first), str(second)]


def _names(models: list[ModelEntry]) -> list[str]:
    return [qualified_name(m) for m in models]


def test_catalogues_of_several_zoos_merge_and_first_wins(zoos: list[str]) -> None:
    assert _names(list_models(path=zoos)) == [
        "onnx.bert_base",
        "onnx.resnet18",
        "samediff.resnet18",
        "samediff.resnet50",
    ]
    files = [file for file, _ in find_catalogs(zoos)]
    assert files[1] == Path(zoos[0]) / "omnihub_generated" / "samediff" / "_catalog.json"


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (Criteria(framework="samediff"), ["samediff.resnet18", "samediff.resnet50"]),
        (Criteria(framework=Framework.ONNX), ["onnx.bert_base", "onnx.resnet18"]),
        (Criteria(name="resnet18"), ["onnx.resnet18", "samediff.resnet18"]),
        (Criteria(name="bert-base"), ["onnx.bert_base"]),  # the spec name
        (Criteria(name="onnx.resnet18"), ["onnx.resnet18"]),  # package.python_name
        (Criteria(name="resnet*"), ["onnx.resnet18", "samediff.resnet18", "samediff.resnet50"]),
        (Criteria(name="*.resnet?8"), ["onnx.resnet18", "samediff.resnet18"]),
        (Criteria(name="resnet"), []),  # exact unless it has glob characters
        (Criteria(model_type="samediff_pipeline"), ["samediff.resnet18", "samediff.resnet50"]),
        (Criteria(format="ONNX"), ["onnx.bert_base", "onnx.resnet18"]),
        (Criteria(tags=("vision", "imagenet")), ["samediff.resnet18"]),
        (Criteria(tags="text"), ["onnx.bert_base"]),
        (Criteria(repository="mirror"), ["onnx.resnet18"]),
        (Criteria(package="onnx", name="resnet*"), ["onnx.resnet18"]),
        (Criteria(filters=lambda m: m.python_name.endswith("50")), ["samediff.resnet50"]),
        (
            Criteria(framework="samediff", filters=[lambda m: "vision" in m.tags, lambda m: False]),
            [],
        ),
    ],
)
def test_each_criterion_filters(zoos: list[str], criteria: Criteria, expected: list[str]) -> None:
    assert _names(list_models(criteria, path=zoos)) == expected


def test_default_search_path_is_sys_path(zoos: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for directory in reversed(zoos):
        monkeypatch.syspath_prepend(directory)
    found = catalog_dirs()
    assert found[:2] == [Path(d) / "omnihub_generated" for d in zoos]
    assert "onnx.bert_base" in _names(omnihub.list_models(omnihub.Criteria(name="bert*")))


def test_search_never_imports_generated_code(zoos: list[str]) -> None:
    # every generated __init__.py written by write_catalog raises ImportError when imported
    before = set(sys.modules)
    assert len(list_models(path=zoos)) == 4
    assert not any(name.startswith("omnihub_generated") for name in set(sys.modules) - before)


def test_unknown_enum_value_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown framework 'tensorflow'.*dl4j"):
        Criteria(framework="tensorflow")
    with pytest.raises(ConfigurationError, match=r"unknown format 'pickle'"):
        Criteria(format="pickle")


def test_malformed_catalogue_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "omnihub_generated" / "broken" / "_catalog.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"broken/_catalog\.json: invalid catalogue"):
        list_models(path=[str(tmp_path)])


def test_directories_without_catalogue_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "omnihub_generated" / "__pycache__").mkdir(parents=True)
    (tmp_path / "omnihub_generated" / "empty").mkdir()
    assert list_models(path=[str(tmp_path)]) == []


def test_load_needs_exactly_one_match(zoos: list[str]) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no installed model matches name='nope'"):
        load(Criteria(name="nope"), path=zoos)
    with pytest.raises(AmbiguousModelError) as info:
        load(Criteria(name="resnet18"), path=zoos)
    message = str(info.value)
    assert "2 models match name='resnet18'" in message
    assert "onnx.resnet18" in message
    assert "samediff.resnet18" in message
    assert _names(list(info.value.candidates)) == ["onnx.resnet18", "samediff.resnet18"]
    assert isinstance(info.value, OmnihubError)


def test_ambiguity_message_is_bounded() -> None:
    many = [entry(f"m{i:03d}") for i in range(50)]
    with pytest.raises(AmbiguousModelError, match=r"50 models match any model: .* and 30 more"):
        select_one(Criteria(), many)


def test_describe_lists_the_set_fields() -> None:
    text = Criteria(framework="onnx", name="r*", tags=("a",), filters=[bool]).describe()
    assert text == "framework=onnx, name='r*', tags=['a'], 1 filter(s)"


def test_import_omnihub_does_not_import_search() -> None:
    code = "import omnihub, sys; print('omnihub.search' in sys.modules, 'attrs' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


_ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_entries = st.builds(
    entry,
    python_name=_ident,
    package=st.sampled_from(["p", "q"]),
    framework=st.sampled_from(Framework),
    model_type=st.sampled_from(ModelType),
    format=st.sampled_from(Format),
    tags=st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3).map(tuple),
    repository=st.none() | st.sampled_from(["r1", "r2"]),
)


@given(st.lists(_entries, max_size=8, unique_by=qualified_name), st.data())
def test_an_entry_always_matches_criteria_built_from_itself(
    models: list[ModelEntry], data: st.DataObject
) -> None:
    if not models:
        return
    target = data.draw(st.sampled_from(models))
    criteria = Criteria(
        framework=target.framework.value,
        model_type=target.model_type.name,
        format=target.format,
        tags=target.tags[:1],
        repository=target.repository,
        package=target.package,
        name=qualified_name(target),
    )
    assert select_one(criteria, [m for m in models if criteria.matches(m)]) == target
    # the empty criteria match everything; a criterion only ever narrows the set
    assert all(Criteria().matches(m) for m in models)
    narrower = Criteria(framework=target.framework, tags=("a",))
    wider = Criteria(framework=target.framework)
    assert {qualified_name(m) for m in models if narrower.matches(m)} <= {
        qualified_name(m) for m in models if wider.matches(m)
    }


def test_load_fetches_through_the_runtime_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnihub.model_file import ModelFile

    from .zoo import pinned, write_zoo_file

    content = b"raw model bytes" * 100
    model = pinned(entry("blob", "files", file="sub/blob.bin"), content)
    write_catalog(tmp_path / "site", "files", [model])
    write_zoo_file(tmp_path / "zoo", model, content)
    monkeypatch.setenv("OMNIHUB_URL", (tmp_path / "zoo").as_uri())
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OMNIHUB_OFFLINE", raising=False)
    loaded = omnihub.load(Criteria(name="files.blob"), path=[str(tmp_path / "site")])
    assert isinstance(loaded, ModelFile)
    assert loaded.path == tmp_path / "home" / "onnx" / "sub" / "blob.bin"
    assert loaded.read_bytes() == content
    assert loaded.entry == model
