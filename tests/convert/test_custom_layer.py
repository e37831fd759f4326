"""The custom-layer registry: by API, by entry point, and unsupported layers reported by name."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from omnihub.convert import register_layer, unregister_layer
from omnihub.errors import LoadError

from tests.convert.custom_layer_example import CLASS_NAME, custom_layer
from tests.convert.fixtures import TOLERANCE, fixture, load_mln


def test_without_a_converter_the_custom_layer_is_unsupported_by_name() -> None:
    path, x, _ = fixture("CustomLayerExample", "float")
    net = load_mln(path)
    with pytest.raises(LoadError) as info:
        net.to_onnx()
    message = str(info.value)
    assert str(path) in message
    assert f"layer 1 'layer1' ({CLASS_NAME}): no converter" in message
    assert "register_layer" in message
    with pytest.raises(LoadError, match="no converter"):
        net.output(x)


def test_registered_by_simple_name_and_unregistered() -> None:
    path, x, expected = fixture("CustomLayerExample", "float")
    register_layer("CustomLayer", custom_layer)
    np.testing.assert_allclose(load_mln(path).output(x), expected, **TOLERANCE)
    unregister_layer("CustomLayer")
    with pytest.raises(LoadError, match="no converter"):
        load_mln(path).to_onnx()


def test_a_registration_overrides_a_builtin() -> None:
    """A user's converter for DL4J's own DenseLayer wins over the built-in one."""
    path, _, _ = fixture("CustomLayerExample", "float")
    register_layer(CLASS_NAME, custom_layer)
    calls = []

    def dense_as_identity_plus_one(ctx, inp):  # type: ignore[no-untyped-def]
        calls.append(ctx.layer.name)
        return ctx.ff(ctx.b.node("Add", [ctx.dense(inp.name), ctx.b.scalar(1.0)]))

    register_layer("org.deeplearning4j.nn.conf.layers.DenseLayer", dense_as_identity_plus_one)
    load_mln(path).to_onnx()
    assert calls == ["0"]


def test_register_layer_rejects_non_callables() -> None:
    with pytest.raises(TypeError):
        register_layer(CLASS_NAME, "not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        register_layer("", custom_layer)


def _install_plugin(site: Path, value: str) -> None:
    """A real installed distribution declaring an ``omnihub.layers`` entry point."""
    (site / "customlayerplugin.py").write_text(
        "from tests.convert.custom_layer_example import custom_layer\n"
    )
    info = site / "customlayerplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: customlayerplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[omnihub.layers]\n{CLASS_NAME} = {value}\n")


def test_converter_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(tmp_path, "customlayerplugin:custom_layer")
    monkeypatch.syspath_prepend(str(tmp_path))
    path, x, expected = fixture("CustomLayerExample", "double")
    np.testing.assert_allclose(load_mln(path).output(x), expected, **TOLERANCE)


def test_a_broken_entry_point_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(tmp_path, "customlayerplugin:no_such_function")
    monkeypatch.syspath_prepend(str(tmp_path))
    path, _, _ = fixture("CustomLayerExample", "float")
    with (
        pytest.warns(RuntimeWarning, match="ignoring layer converter entry point"),
        pytest.raises(LoadError, match="no converter"),
    ):
        load_mln(path).to_onnx()
    sys.modules.pop("customlayerplugin", None)
