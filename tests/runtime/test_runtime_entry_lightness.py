"""The first call's light paths give the same answers as the heavy ones they stand in for.

``catalog.entry_from_dict`` structures well-typed data without cattrs; the property tests
compare it with the cattrs converter on arbitrary (often mistyped) data. ``may_declare``
lets the registries skip ``importlib.metadata``; it must never say "no" when a distribution
does declare the group.
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

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._entry_points import may_declare
from omnihub.catalog import ModelEntry, _converter, _exact_entry, entry_from_dict
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
_FIELDS = [*_REQUIRED, "url", "pretrained", "sha256", "size", "tags", "metadata", "source"]

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
_plausible = st.sampled_from(
    ["onnx", "dl4j", "raw", "gguf", "COMP_GRAPH", "SEQUENTIAL", "x", ["a", "b"], {"k": 1}]
)


def _cattrs(data: object) -> ModelEntry | type[Exception]:
    try:
        entry: ModelEntry = _converter().structure(data, ModelEntry)
    except (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError):
        return ConfigurationError
    return entry


def _ours(data: object) -> ModelEntry | type[Exception] | str:
    """Our entry, or ConfigurationError -- or the message, if it does not name the source."""
    try:
        return entry_from_dict(data, source="cat.json")
    except ConfigurationError as exc:
        message = str(exc)
    return (
        ConfigurationError if message.startswith("cat.json: invalid catalogue entry") else message
    )


@given(
    st.dictionaries(st.sampled_from(_FIELDS), _json | _plausible, max_size=6),
    st.sets(st.sampled_from(list(_REQUIRED)), max_size=2),
)
def test_entry_from_dict_agrees_with_cattrs(overrides: dict[str, Any], drop: set[str]) -> None:
    data: dict[str, Any] = {**_REQUIRED, **overrides}
    for key in drop:
        data.pop(key, None)
    assert _ours(data) == _cattrs(data)


@given(_json)
def test_entry_from_dict_agrees_with_cattrs_on_any_json(data: object) -> None:
    assert _ours(data) == _cattrs(data)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "url": st.none() | st.text(max_size=5),
            "pretrained": st.booleans(),
            "size": st.none() | st.integers(),
            "tags": st.lists(st.text(max_size=3), max_size=3),
            "metadata": st.dictionaries(
                st.text(max_size=3),
                st.text(max_size=3) | st.integers() | st.booleans() | st.floats(allow_nan=False),
            ),
            "extra": _json,
        },
    )
)
def test_well_typed_entries_take_the_fast_path(optional: dict[str, Any]) -> None:
    data = {**_REQUIRED, **optional}
    fast = _exact_entry(data)
    assert fast is not None
    assert fast == _cattrs(data)
    assert type(fast.metadata) is dict
    assert type(fast.tags) is tuple


@pytest.mark.parametrize(
    ("key", "value"),
    [("size", True), ("size", 1.0), ("framework", "ONNX"), ("tags", "ab"), ("name", None)],
)
def test_mistyped_fields_leave_the_decision_to_cattrs(key: str, value: object) -> None:
    data = {**_REQUIRED, key: value}
    assert _exact_entry(data) is None
    assert _ours(data) == _cattrs(data)


def test_a_bad_entry_names_the_source() -> None:
    with pytest.raises(ConfigurationError, match=r"^x/_catalog\.json: invalid catalogue entry"):
        entry_from_dict({**_REQUIRED, "format": "nope"}, source="x/_catalog.json")


def test_first_call_imports_neither_cattrs_nor_metadata() -> None:
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
            "cattrs" in sys.modules,
            "importlib.metadata" in sys.modules,
            may_declare("omnihub.loaders"),
        ]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    cattrs_imported, metadata_imported, plugins_possible = json.loads(out.stdout)
    assert cattrs_imported is False
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
