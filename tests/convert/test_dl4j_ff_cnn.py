"""DL4J feed-forward and CNN layers -> ONNX, on real files and hand-built networks."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from omnihub.convert import BATCH, OPSET
from omnihub.loaders.dl4j import MultiLayerNetwork, read_model_serializer

from tests.loaders.helpers import shared_dir

IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], np.float32)


def _iris() -> MultiLayerNetwork:
    net = read_model_serializer(shared_dir("dl4j") / "trained_iris_model.zip")
    assert isinstance(net, MultiLayerNetwork)
    return net


def _numpy_mlp(net: MultiLayerNetwork, x: np.ndarray) -> np.ndarray:
    """The iris network by hand: tanh, tanh, softmax dense layers (the test's oracle)."""
    table = net.param_table()
    h = np.tanh(x @ table["0_W"] + table["0_b"])
    h = np.tanh(h @ table["1_W"] + table["1_b"])
    z = h @ table["2_W"] + table["2_b"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def test_iris_dense_output_matches_numpy_both_ways() -> None:
    net = _iris()
    expected = _numpy_mlp(net, IRIS)
    np.testing.assert_allclose(net.output(IRIS), expected, rtol=1e-5, atol=1e-6)
    model = net.to_onnx()
    session = ort.InferenceSession(model.SerializeToString())
    (direct,) = session.run(None, {"input": IRIS})
    np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-6)


def test_iris_model_is_checked_named_and_batch_dynamic() -> None:
    model = _iris().to_onnx()
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import] == [OPSET]
    (graph_input,) = model.graph.input
    assert graph_input.name == "input"
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].dim_param == BATCH
    assert dims[1].dim_value == 4
    assert [o.name for o in model.graph.output] == ["output"]
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT}
    # any batch size runs
    session = ort.InferenceSession(model.SerializeToString())
    for n in (1, 7):
        (out,) = session.run(None, {"input": np.zeros((n, 4), np.float32)})
        assert out.shape == (n, 3)


def test_output_reuses_one_session() -> None:
    net = _iris()
    net.output(IRIS)
    runner = net._session_slot["runner"]
    first = runner._session
    net.output(IRIS[:1])
    assert runner._session is first


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            np.zeros((2, 5), np.float32),
            r"must have shape \[batch, 4\] \(rank 2\), got shape \[2, 5\]",
        ),
        (np.zeros(4, np.float32), r"must have shape \[batch, 4\] \(rank 2\), got shape \[4\]"),
        (np.array([["a", "b", "c", "d"]]), r"must be numeric \(float32\)"),
    ],
)
def test_bad_inputs_name_the_expected_shape(value: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _iris().output(value)


def test_integer_and_double_inputs_are_cast() -> None:
    net = _iris()
    expected = net.output(IRIS.astype(np.float64))
    assert expected.dtype == np.float32
    ints = np.array([[5, 3, 1, 0]])
    np.testing.assert_allclose(net.output(ints), net.output(ints.astype(np.float32)))
