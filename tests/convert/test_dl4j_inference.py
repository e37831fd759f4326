"""Every fixture in ``../shared/data/dl4j-inference`` predicts what DL4J itself predicted.

Each model runs on its stored input through ``output()`` and through onnxruntime directly on
the ``to_onnx()`` bytes, and is compared with DL4J's stored output.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from omnihub.convert import disabled_optimizers, register_layer
from omnihub.loaders.dl4j import ComputationGraph, MultiLayerNetwork, read_model_serializer

from tests.convert.custom_layer_example import CLASS_NAME, custom_layer
from tests.convert.fixtures import HALF_TOLERANCE, TOLERANCE, fixture, fixture_dir

ELEM = {"float": onnx.TensorProto.FLOAT, "double": onnx.TensorProto.DOUBLE}
ELEM["half"] = onnx.TensorProto.FLOAT16


def _direct(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(
        model.SerializeToString(),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=disabled_optimizers(model),
    )
    (name,) = [i.name for i in session.get_inputs()]
    return np.asarray(session.run(None, {name: x})[0])


def test_every_fixture_is_covered_here() -> None:
    models = sorted(
        p.name
        for p in fixture_dir().glob("*_100b6*.bin")
        if "_Input" not in p.name and "_Output" not in p.name
    )
    assert models == [
        "CustomLayerExample_100b6_double.bin",
        "CustomLayerExample_100b6_float.bin",
        "CustomLayerExample_100b6_half.bin",
        "SyntheticBidirectionalRNNGraph_100b6.bin",
        "SyntheticCNN_100b6.bin",
    ]


def test_synthetic_cnn_matches_dl4j_both_ways() -> None:
    path, x, expected = fixture("SyntheticCNN")
    net = read_model_serializer(path)
    assert isinstance(net, MultiLayerNetwork)
    out = net.output(x)
    assert out.shape == expected.shape == (4, 4, 11, 22)
    np.testing.assert_allclose(out, expected, **TOLERANCE)
    np.testing.assert_allclose(_direct(net.to_onnx(), x), expected, **TOLERANCE)


@pytest.mark.parametrize("dtype", ["float", "double", "half"])
def test_custom_layer_example_matches_dl4j_both_ways(dtype: str) -> None:
    path, x, expected = fixture("CustomLayerExample", dtype)
    register_layer(CLASS_NAME, custom_layer)
    net = read_model_serializer(path)
    assert isinstance(net, MultiLayerNetwork)
    model = net.to_onnx()
    assert model.graph.input[0].type.tensor_type.elem_type == ELEM[dtype]
    floats = {t.data_type for t in model.graph.initializer} - {onnx.TensorProto.INT64}
    assert floats == {ELEM[dtype]}
    tolerance = HALF_TOLERANCE if dtype == "half" else TOLERANCE
    out = net.output(x)
    assert out.dtype == expected.dtype
    np.testing.assert_allclose(out.astype(np.float64), expected, **tolerance)
    np.testing.assert_allclose(_direct(model, x).astype(np.float64), expected, **tolerance)


def test_bidirectional_rnn_graph_matches_dl4j_both_ways() -> None:
    path, x, expected = fixture("SyntheticBidirectionalRNNGraph")
    net = read_model_serializer(path)
    assert isinstance(net, ComputationGraph)
    np.testing.assert_allclose(net.output_single(x), expected, **TOLERANCE)
    np.testing.assert_allclose(_direct(net.to_onnx(), x), expected, **TOLERANCE)
