"""SameDiff -> ONNX on the three real 2020 FlatGraph files.

SameDiff files hold no reference outputs, so the converted models are checked against
(a) onnx.reference on the same ONNX graph, (b) small independent numpy computations of the
networks from the parsed weights (MLP, 3D CNN, LSTM in libnd4j's formulation), and (c) the ONNX
checker and a save/load round trip.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.convert.samediff import default_outputs, samediff_to_onnx
from omnihub.errors import LoadError
from omnihub.loaders.samediff import SameDiffGraph, read_flatgraph
from onnx.reference import ReferenceEvaluator

from tests.loaders.helpers import shared_dir

MLP = "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb"
CNN3D = "Cnn3dSynthetic_Model_RANDOM_INIT_UNTRAINED.fb"
RNN = "RnnCsvSequenceClassification1_Model_RANDOM_INIT_UNTRAINED.fb"
FILES = (MLP, CNN3D, RNN)
RNG = np.random.default_rng(13)


def graph_of(name: str) -> SameDiffGraph:
    return read_flatgraph(shared_dir("samediff") / name)


shared_graph = functools.cache(graph_of)


def random_feeds(model: onnx.ModelProto, batch: int = 3) -> dict[str, npt.NDArray[Any]]:
    feeds = {}
    for value in model.graph.input:
        dims = [
            d.dim_value if d.HasField("dim_value") else batch
            for d in value.type.tensor_type.shape.dim
        ]
        feeds[value.name] = RNG.standard_normal(dims).astype(np.float32)
    return feeds


def softmax(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    result: npt.NDArray[Any] = e / e.sum(axis=-1, keepdims=True)
    return result


@pytest.mark.parametrize("name", FILES)
def test_real_file_converts_with_named_io(name: str) -> None:
    graph = graph_of(name)
    model = graph.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    # the label placeholder and the loss belong to training: left out
    assert [i.name for i in model.graph.input] == ["in"]
    assert [o.name for o in model.graph.output] == ["out"]
    assert default_outputs(graph) == ("out",)
    weights = {t.name: t for t in model.graph.initializer}
    for name_, array in graph.weights.items():
        tensor = weights[name_]
        assert tensor.data_type == onnx.TensorProto.FLOAT
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(tensor), array)
    declared = graph.variable("in").shape
    assert declared is not None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [
        "batch" if d == -1 else d for d in declared
    ]


@pytest.mark.parametrize("name", FILES)
def test_onnxruntime_matches_reference_and_survives_save_load(name: str, tmp_path: Path) -> None:
    model = graph_of(name).to_onnx()
    feeds = random_feeds(model)
    (ours,) = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    (ref,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-5, atol=1e-6)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    (again,) = ort.InferenceSession(loaded.SerializeToString()).run(None, feeds)
    np.testing.assert_array_equal(again, ours)


def test_mlp_matches_numpy() -> None:
    graph = graph_of(MLP)
    w = graph.weights
    x = RNG.standard_normal((7, 2)).astype(np.float32)
    hidden = np.maximum(x @ w["w0"] + w["b0"], 0)
    expected = softmax(hidden @ w["w1"] + w["b1"])
    result = graph.output({"in": x})
    assert list(result) == ["out"]
    np.testing.assert_allclose(result["out"], expected, rtol=1e-5, atol=1e-6)
    both = graph.output({"in": x, "label": np.zeros((7, 2))}, ["relu", "out"])
    np.testing.assert_allclose(both["relu"], hidden, rtol=1e-5, atol=1e-6)


def conv3d_ncdhw(x: npt.NDArray[Any], w: npt.NDArray[Any], stride: int) -> npt.NDArray[Any]:
    """Valid 3D convolution, weights [kD, kH, kW, iC, oC] (libnd4j's default layout)."""
    k = w.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k, k), axis=(2, 3, 4))
    windows = windows[:, :, ::stride, ::stride, ::stride]  # [N, iC, oD, oH, oW, kD, kH, kW]
    result: npt.NDArray[Any] = np.einsum("ncdhwijk,ijkco->nodhw", windows, w)
    return result


def test_cnn3d_matches_numpy() -> None:
    graph = graph_of(CNN3D)
    w = graph.weights
    x = RNG.standard_normal((4, 3, 8, 8, 8)).astype(np.float32)
    conv = np.maximum(conv3d_ncdhw(x, w["w0"], 2) + w["b0"][None, :, None, None, None], 0)
    n, c, d, h, wd = conv.shape
    pooled = conv[:, :, : d // 2 * 2, : h // 2 * 2, : wd // 2 * 2]
    pooled = pooled.reshape(n, c, d // 2, 2, h // 2, 2, wd // 2, 2).max(axis=(3, 5, 7))
    expected = softmax(pooled.reshape(-1, 8) @ w["w4"] + w["b4"])
    np.testing.assert_allclose(graph.output({"in": x})["out"], expected, rtol=1e-4, atol=1e-5)


def sigmoid(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    result: npt.NDArray[Any] = 1 / (1 + np.exp(-x))
    return result


def test_rnn_matches_numpy_lstm() -> None:
    """lstmLayer as libnd4j computes it: inputs by position (x, Wx, Wr, b, hI, cI, Wp), gates
    i, f, c', o; peepholes i, f on c[t-1] and o on c[t]; dataFormat 1 = [batch, time, nIn]."""
    graph = graph_of(RNN)
    (op,) = [o for o in graph.ops if o.op_name == "lstmLayer"]
    arrays = graph.arrays
    wx, wr, b, h, c, wp = (arrays[n] for n in op.inputs[1:])  # input 0 is the placeholder
    n_out = wr.shape[0]
    x = RNG.standard_normal((10, 3, 60)).astype(np.float32)
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ wx + h @ wr + b
        zi, zf, zg, zo = (z[:, k * n_out : (k + 1) * n_out] for k in range(4))
        i = sigmoid(zi + c * wp[:n_out])
        f = sigmoid(zf + c * wp[n_out : 2 * n_out])
        c = f * c + i * np.tanh(zg)
        o = sigmoid(zo + c * wp[2 * n_out :])
        h = o * np.tanh(c)
        outputs.append(h)
    mean = np.stack(outputs, axis=1).mean(axis=1)
    w = graph.weights
    expected = softmax(mean @ w["w1"] + w["b1"])
    np.testing.assert_allclose(graph.output({"in": x})["out"], expected, rtol=1e-4, atol=1e-5)
    # the last hidden state is the op's second output
    last = graph.output({"in": x}, "lstmLayer:1")["lstmLayer:1"]
    np.testing.assert_allclose(last, outputs[-1], rtol=1e-4, atol=1e-5)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.integers(1, 9))
def test_any_batch_size_gives_probabilities(batch: int) -> None:
    for name, shape in ((MLP, (batch, 2)), (CNN3D, (batch, 3, 8, 8, 8))):
        graph = shared_graph(name)  # one session per file across examples
        x = RNG.standard_normal(shape).astype(np.float32)
        out = graph.output({"in": x})["out"]
        assert out.shape == (batch, 10 if name == CNN3D else 2)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_session_is_built_once_per_output_set() -> None:
    graph = graph_of(MLP)
    x = RNG.standard_normal((2, 2)).astype(np.float32)

    def runners() -> dict[str, Any]:
        slot = graph._session_slot
        return {k: v["runner"] for k, v in slot.items() if k.startswith("outputs:")}

    graph.output({"in": x})
    first = runners()
    assert list(first) == ["outputs:out"]
    graph.output({"in": x}, "out")  # the same output set, named
    assert runners() == first
    assert all(runners()[k] is first[k] for k in first)
    graph.output({"in": x}, "relu")
    assert len(runners()) == 2


def test_loss_is_not_an_inference_output() -> None:
    graph = graph_of(MLP)
    with pytest.raises(LoadError, match=r"log_loss.*training-only"):
        graph.to_onnx("loss")


def test_bad_requests_name_what_is_wrong() -> None:
    graph = graph_of(MLP)
    x = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"no variable named 'nope'"):
        graph.output({"in": x}, "nope")
    with pytest.raises(ValueError, match=r"'input' not a placeholder.*in, label"):
        graph.output({"input": x})
    with pytest.raises(ValueError, match=r"missing 'in'"):
        graph.output({"label": x})
    with pytest.raises(ValueError, match=r"'in' must have shape \[batch, 2\]"):
        graph.output({"in": np.zeros((2, 3))})


def test_fixed_batch_graph_keeps_its_declared_shape() -> None:
    # the RNN file declares in [10, 3, 60] and stores [10, 7] initial states
    graph = graph_of(RNN)
    with pytest.raises(ValueError, match=r"\[10, 3, 60\]"):
        graph.output({"in": np.zeros((4, 3, 60), dtype=np.float32)})


def test_conversion_is_deterministic() -> None:
    model_a = samediff_to_onnx(graph_of(CNN3D))
    model_b = samediff_to_onnx(graph_of(CNN3D))
    assert model_a.SerializeToString() == model_b.SerializeToString()
