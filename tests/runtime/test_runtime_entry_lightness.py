"""The first call's light paths: hand-written catalogue structuring and ``may_declare``.

``catalog.entry_from_dict`` structures and validates a model object without attrs or
cattrs; the property tests check that it inverts ``entry_to_dict`` and that arbitrary
(often mistyped) JSON gives either a valid entry or a ``ConfigurationError`` naming the
file, the model and the field -- never another exception. ``may_declare`` lets the
registries skip ``importlib.metadata``; it must never say "no" when a distribution does
declare the group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._entry_points import may_declare
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry, entry_from_dict, entry_to_dict
from omnihub.errors import ConfigurationError

_REQUIRED = {
    "name": "m",
    "python_name": "m",
    "namespace": "Models",
    "package": "pkg",
    "framework": "onnx",
    "model_type": "COMP_GRAPH",
    "format": "raw",
    "documentation": "doc",
    "file": "m.bin",
}
_OPTIONAL_STR = [
    "url",
    "repository",
    "hugging_face_id",
    "file_pattern",
    "revision",
    "sha256",
    "license",
    "factory",
    "source",
]
_FIELDS = [*_REQUIRED, *_OPTIONAL_STR, "pretrained", "size", "tags", "metadata"]

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
_plausible = st.sampled_from(
    ["onnx", "dl4j", "raw", "gguf", "COMP_GRAPH", "SEQUENTIAL", "x", ["a", "b"], {"k": 1}]
)
_text = st.text(max_size=8)
_scalar = st.text(max_size=5) | st.integers() | st.booleans() | st.floats(allow_nan=False)

#: Entries with every field drawn, defaults included (so omitted keys are exercised too).
entries = st.builds(
    ModelEntry,
    name=_text,
    python_name=_text,
    namespace=_text,
    package=_text,
    framework=st.sampled_from(Framework),
    model_type=st.sampled_from(ModelType),
    format=st.sampled_from(Format),
    documentation=_text,
    file=_text,
    url=st.none() | _text,
    pretrained=st.booleans(),
    repository=st.none() | _text,
    hugging_face_id=st.none() | _text,
    file_pattern=st.none() | _text,
    revision=st.none() | _text,
    sha256=st.none() | _text,
    size=st.none() | st.integers(),
    license=st.none() | _text,
    tags=st.lists(_text, max_size=3).map(tuple),
    factory=st.none() | _text,
    metadata=st.dictionaries(_text, _scalar, max_size=3),
    source=st.none() | _text,
)


def _ours(data: object) -> ModelEntry | str:
    """Our entry, or the error message (any other exception fails the test)."""
    try:
        return entry_from_dict(data, source="cat.json")
    except ConfigurationError as exc:
        return str(exc)


def _json_value(value: object) -> object:
    return value.value if isinstance(value, Framework | ModelType | Format) else value


@given(entries)
def test_entry_to_dict_round_trips_through_json(entry: ModelEntry) -> None:
    data = entry_to_dict(entry)
    assert entry_from_dict(json.loads(json.dumps(data)), source="x") == entry
    for name, default in {"pretrained": True, "tags": (), "metadata": {}, "url": None}.items():
        assert (name in data) is (getattr(entry, name) != default)  # defaults are left out
    assert all(type(v) in (str, int, float, bool, list, dict) or v is None for v in data.values())


@given(
    st.dictionaries(st.sampled_from(_FIELDS), _json | _plausible, max_size=6),
    st.sets(st.sampled_from(list(_REQUIRED)), max_size=2),
)
def test_any_entry_json_is_an_entry_or_a_configuration_error(
    overrides: dict[str, Any], drop: set[str]
) -> None:
    data: dict[str, Any] = {**_REQUIRED, **overrides, "unknown": [1]}
    for key in drop:
        data.pop(key, None)
    result = _ours(data)
    if isinstance(result, ModelEntry):
        assert not drop
        for key, value in overrides.items():
            got = getattr(result, key)
            assert _json_value(got) == (tuple(value) if key == "tags" else value)
        assert entry_from_dict(entry_to_dict(result)) == result
    else:
        assert result.startswith("cat.json: invalid catalogue entry")
        named = [f for f in _FIELDS if f"field {f!r}" in result or f"field '{f}[" in result]
        named += [f for f in _FIELDS if f'field "{f}[' in result]
        assert len(named) == 1, result
        assert named[0] in drop or named[0] in overrides


@given(_json)
def test_any_json_is_an_entry_or_a_configuration_error(data: object) -> None:
    result = _ours(data)
    assert isinstance(result, str)  # no JSON this small holds the required fields
    assert result.startswith("cat.json: invalid catalogue entry")


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "url": st.none() | st.text(max_size=5),
            "pretrained": st.booleans(),
            "size": st.none() | st.integers(),
            "tags": st.lists(st.text(max_size=3), max_size=3),
            "metadata": st.dictionaries(st.text(max_size=3), _scalar),
            "extra": _json,
        },
    )
)
def test_well_typed_entries_are_accepted(optional: dict[str, Any]) -> None:
    entry = entry_from_dict({**_REQUIRED, **optional})
    assert type(entry.metadata) is dict
    assert type(entry.tags) is tuple
    assert entry.metadata == optional.get("metadata", {})
    assert entry.size == optional.get("size")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("size", True, "field 'size': expected an integer or null, got True (bool)"),
        ("size", 1.0, "field 'size': expected an integer or null, got 1.0 (float)"),
        ("pretrained", 1, "field 'pretrained': expected true or false, got 1 (int)"),
        (
            "framework",
            "ONNX",
            "field 'framework': expected one of 'dl4j', 'samediff', 'onnx', got 'ONNX'",
        ),
        (
            "format",
            None,
            "field 'format': expected one of 'samediff', 'dl4j', 'onnx', 'safetensors', 'gguf',"
            " 'raw', got None",
        ),
        ("tags", "ab", "field 'tags': expected a list of strings, got 'ab'"),
        ("tags", ["a", 2], "field 'tags[1]': expected a string, got 2 (int)"),
        (
            "metadata",
            [],
            "field 'metadata': expected an object of strings, numbers and booleans, got []",
        ),
        (
            "metadata",
            {"k": None},
            "field \"metadata['k']\": expected a string, number or boolean, got None",
        ),
        ("metadata", {1: "v"}, "field 'metadata': expected string keys, got 1 (int)"),
        ("url", 3, "field 'url': expected a string or null, got 3 (int)"),
        ("name", None, "field 'name': expected a string, got None"),
    ],
)
def test_a_mistyped_field_is_named_with_what_was_expected(
    key: str, value: object, problem: str
) -> None:
    data = {**_REQUIRED, "python_name": "pyname", key: value}
    with pytest.raises(ConfigurationError) as info:
        entry_from_dict(data, source="c.json", index=4)
    assert str(info.value).startswith(
        f"c.json: invalid catalogue entry models[4] 'pyname': {problem}"
    )


def test_a_missing_field_and_a_non_object_are_named() -> None:
    data = {k: v for k, v in _REQUIRED.items() if k != "file"}
    with pytest.raises(
        ConfigurationError, match=r"^x: invalid catalogue entry 'm': missing field 'file'"
    ):
        entry_from_dict(data, source="x")
    with pytest.raises(
        ConfigurationError, match=r"^x: invalid catalogue entry models\[0\]: expected a JSON object"
    ):
        entry_from_dict([1], source="x", index=0)
    no_names = {k: v for k, v in _REQUIRED.items() if k not in ("name", "python_name")}
    with pytest.raises(
        ConfigurationError, match=r"^x: invalid catalogue entry models\[7\]: missing field 'name'"
    ):
        entry_from_dict(no_names, source="x", index=7)


def test_a_bad_entry_names_the_source() -> None:
    with pytest.raises(ConfigurationError, match=r"^x/_catalog\.json: invalid catalogue entry"):
        entry_from_dict({**_REQUIRED, "format": "nope"}, source="x/_catalog.json")


def test_first_call_imports_neither_attrs_nor_cattrs_nor_metadata() -> None:
    """Structuring a compiled entry and choosing its loader import no heavy library."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from omnihub.catalog import entry_from_dict
        from omnihub.loaders import find_loader
        from omnihub._entry_points import may_declare
        entry = entry_from_dict(json.loads({json.dumps(json.dumps(_REQUIRED))}))
        find_loader(entry)
        print(json.dumps([
            sorted(m for m in ("attr", "attrs", "cattrs") if m in sys.modules),
            "importlib.metadata" in sys.modules,
            may_declare("omnihub.loaders"),
        ]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    heavy, metadata_imported, plugins_possible = json.loads(out.stdout)
    assert heavy == []
    assert metadata_imported is plugins_possible


def _dist(root: Path, name: str, entry_points_txt: str | None) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points_txt is not None:
        (info / "entry_points.txt").write_text(entry_points_txt)


GROUP = "omnihub.test_lightness_group"


def test_may_declare_is_false_only_without_a_declaration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert may_declare(GROUP) is False
    assert list(entry_points(group=GROUP)) == []
    assert may_declare("console_scripts") is True  # the project's own CLI scripts
    _dist(tmp_path, "nothing_here", None)
    _dist(tmp_path, "other_group", "[other]\nx = os:getcwd\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert may_declare(GROUP) is False
    _dist(tmp_path, "declares", f"[{GROUP}]\nx = os:getcwd\n")
    assert may_declare(GROUP) is True
    assert [ep.name for ep in entry_points(group=GROUP)] == ["x"]


def test_may_declare_reads_egg_and_egg_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    egg = tmp_path / "plugin-1.0.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "entry_points.txt").write_text(f"[{GROUP}]\nx = os:getcwd\n")
    monkeypatch.syspath_prepend(str(egg))
    assert may_declare(GROUP) is True
    monkeypatch.syspath_prepend(str(tmp_path / "missing"))
    info = tmp_path / "site" / "p.egg-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site")])
    assert may_declare(GROUP) is True


def test_may_declare_is_conservative_when_unsure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: it could have held one
    monkeypatch.syspath_prepend(str(archive))
    assert may_declare(GROUP) is True
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing")])
    assert may_declare(GROUP) is False

    class Finder:
        @staticmethod
        def find_distributions(*_args: object, **_kwargs: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert may_declare(GROUP) is True


def test_a_long_wait_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from omnihub.locking import _wait_notice

    with caplog.at_level("INFO", logger="omnihub"):
        _wait_notice("pkg.model", Path("/cache/onnx/m.bin"))
    assert [r.getMessage() for r in caplog.records] == [
        "pkg.model: waiting for another process downloading /cache/onnx/m.bin"
    ]


def test_the_lock_module_does_not_import_logging() -> None:
    code = "import sys, omnihub.locking; print('logging' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


#: What the ten-second path must not import: the inference stack (issue 13).
INFERENCE_STACK = ("onnx", "onnxruntime", "omnihub.convert")

# In the child: import the generated namespaces, then load a real SameDiff file through the
# generated function and a real DL4J network through ``omnihub.load`` (both cache hits),
# touching their fields; report which inference modules each step imported.
_INFERENCE_CHILD = """
import json, sys
heavy = {heavy!r}
def imported():
    return sorted(m for m in heavy if m in sys.modules)
import omnihub_generated.samediff as samediff
import omnihub_generated.dl4j
after_import = imported()
numpy_on_import = "numpy" in sys.modules
graph = samediff.resnet18()
import omnihub
network = omnihub.load(omnihub.Criteria(package="lightzoo", name="iris"))
table = network.param_table()
print(json.dumps({{
    "import": after_import,
    "numpy_on_import": numpy_on_import,
    "hit": imported(),
    "types": [type(graph).__name__, type(network).__name__],
    "ops": len(graph.ops),
    "params": sum(int(a.size) for a in table.values()),
}}))
"""


def _publish_cached(home: Path, framework: str, file: str, data: bytes) -> None:
    """Put ``data`` in the cache as ``<framework>/<file>`` with a first-use record."""
    import hashlib

    from omnihub.cache import Record, write_record

    target = home / framework / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    write_record(target, Record(len(data), target.stat().st_mtime_ns, digest, "first-use"))


def test_generated_import_and_cache_hits_do_not_import_onnx(tmp_path: Path) -> None:
    """``import omnihub_generated.samediff`` and cache hits never load the inference stack."""
    from omnihub._enums import Format, Framework, ModelType

    from tests.cli.zoo import entry, pinned, write_catalog
    from tests.loaders.helpers import shared_dir
    from tests.runtime.helpers import child_env

    samediff_data = (
        shared_dir("samediff") / "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb"
    ).read_bytes()
    dl4j_data = (shared_dir("dl4j") / "trained_iris_model.zip").read_bytes()
    home, site = tmp_path / "home", tmp_path / "site"
    _publish_cached(home, "samediff", "resnet18.fb", samediff_data)
    _publish_cached(home, "dl4j", "iris.zip", dl4j_data)
    iris = entry(
        "iris",
        "lightzoo",
        framework=Framework.DL4J,
        format=Format.DL4J,
        model_type=ModelType.SEQUENTIAL,
        file="iris.zip",
    )
    write_catalog(site, "lightzoo", [pinned(iris, dl4j_data)])
    code = _INFERENCE_CHILD.format(heavy=INFERENCE_STACK)
    env = child_env({"OMNIHUB_HOME": str(home), "OMNIHUB_URL": "http://127.0.0.1:9/none"})
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(site)])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["types"] == ["SameDiffGraph", "MultiLayerNetwork"]
    assert report["ops"] > 0
    assert report["params"] == 39  # the real iris network: 4-3-3-3
    assert report["import"] == []
    assert report["numpy_on_import"] is False
    assert report["hit"] == []
