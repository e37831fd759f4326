"""DL4J ComputationGraph -> ONNX: the real graphs, every vertex against numpy, names, errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from omnihub.errors import LoadError
from omnihub.loaders.dl4j import ComputationGraph, read_model_serializer
from onnx.reference import ReferenceEvaluator

from tests.convert import rnn_oracle as oracle
from tests.convert.dl4j_writer import Layer, Param, layer
from tests.convert.fixtures import fixture
from tests.loaders.helpers import shared_dir


def _graph(path: Path) -> ComputationGraph:
    graph = read_model_serializer(path)
    assert isinstance(graph, ComputationGraph)
    return graph


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    return [
        d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
        for d in value.type.tensor_type.shape.dim
    ]


# -- the real files -------------------------------------------------------------------------------


def test_bidirectional_fixture_names_dynamic_sizes_and_list_output() -> None:
    path, x, expected = fixture("SyntheticBidirectionalRNNGraph")
    graph = _graph(path)
    model = graph.to_onnx()
    assert [(i.name, _dims(i)) for i in model.graph.input] == [("input", ["batch", 10, "time"])]
    assert [(o.name, _dims(o)) for o in model.graph.output] == [("out", ["batch", None])]
    (only,) = graph.output(x)
    oracle.close(only, expected)
    session = ort.InferenceSession(model.SerializeToString())
    for batch, steps in ((1, 1), (3, 17)):  # other batch sizes and sequence lengths run
        xs = np.random.default_rng(batch).random((batch, 10, steps), np.float32)
        (probs,) = session.run(None, {"input": xs})
        assert probs.shape == (batch, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # the first sequences alone give the same first rows: batch rows are independent
    oracle.close(graph.output_single(x[:2]), expected[:2])


def test_bidirectional_fixture_bad_inputs_say_what_was_expected() -> None:
    path, x, _ = fixture("SyntheticBidirectionalRNNGraph")
    graph = _graph(path)
    with pytest.raises(ValueError, match=r"\[batch, 10, time\].*got shape \[4, 9, 10\]"):
        graph.output(x[:, :9])
    with pytest.raises(ValueError, match=r"takes 1 input\(s\) \(input\), got 2"):
        graph.output(x, x)


def _numpy_regression_graph(graph: ComputationGraph, x: np.ndarray) -> np.ndarray:
    """GravesLSTM(tanh) -> GravesBidirectionalLSTM(softsign) -> RnnOutputLayer(softmax)."""
    t = {k: v.astype(np.float64) for k, v in graph.param_table().items()}
    h = oracle.lstm(x, t["0_W"], t["0_RW"], t["0_b"])
    fwd = oracle.lstm(h, t["1_WF"], t["1_RWF"], t["1_bF"], act="softsign")
    bwd = oracle.lstm(oracle.reverse(h), t["1_WB"], t["1_RWB"], t["1_bB"], act="softsign")
    h = fwd + oracle.reverse(bwd)
    z = np.einsum("nct,co->not", h, t["2_W"]) + t["2_b"][None, :, None]
    return oracle.softmax(z, axis=1)


def test_regression_cg_lstm_converts_and_runs(tmp_path: Path) -> None:
    """The 0.x GravesLSTM graph (pre-1.0 JSON, params 1..477): no DL4J output is stored, so
    onnxruntime, onnx.reference, the saved-and-loaded model and a numpy oracle must agree."""
    graph = _graph(shared_dir("dl4j") / "060_ModelSerializer_Regression_CG_LSTM_1.zip")
    model = graph.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    assert [(i.name, _dims(i)) for i in model.graph.input] == [("in", ["batch", 3, "time"])]
    assert [o.name for o in model.graph.output] == ["2"]
    x = np.random.default_rng(0).normal(0, 0.01, (2, 3, 4)).astype(np.float32)
    out = graph.output_single(x)
    assert out.shape == (2, 5, 4)
    with np.errstate(over="ignore", invalid="ignore"):  # the reference's sigmoid overflows
        (reference,) = ReferenceEvaluator(model).run(None, {"in": x})
    oracle.close(reference, out)
    oracle.close(out, _numpy_regression_graph(graph, x.astype(np.float64)))
    onnx.save(model, tmp_path / "cg.onnx")
    session = ort.InferenceSession(str(tmp_path / "cg.onnx"))
    np.testing.assert_allclose(session.run(None, {"in": x})[0], out, rtol=1e-6)


# -- every vertex ---------------------------------------------------------------------------------


def _head(n_in: int, rng: np.random.Generator) -> tuple[Layer, np.ndarray, np.ndarray]:
    """A dense identity-activation OutputLayer: what the vertex under test feeds."""
    w, b = rng.normal(size=(n_in, 2)), rng.normal(size=2)
    return oracle.dense("OutputLayer", w, b, "identity"), w, b


@pytest.mark.parametrize(
    ("spec", "n_inputs", "n_in", "expected"),
    [
        (oracle.vertex("MergeVertex"), 2, 8, lambda xs: np.concatenate(xs, axis=1)),
        (oracle.vertex("ElementWiseVertex", op="Add"), 3, 4, lambda xs: xs[0] + xs[1] + xs[2]),
        (oracle.vertex("ElementWiseVertex", op="Subtract"), 2, 4, lambda xs: xs[0] - xs[1]),
        (oracle.vertex("ElementWiseVertex", op="Product"), 3, 4, lambda xs: xs[0] * xs[1] * xs[2]),
        (oracle.vertex("ElementWiseVertex", op="Average"), 2, 4, lambda xs: (xs[0] + xs[1]) / 2),
        (oracle.vertex("ElementWiseVertex", op="Max"), 3, 4, np.maximum.reduce),
        (oracle.vertex("SubsetVertex", **{"from": 1, "to": 2}), 1, 2, lambda xs: xs[0][:, 1:3]),
        (oracle.vertex("ScaleVertex", scaleFactor=2.5), 1, 4, lambda xs: xs[0] * 2.5),
        (oracle.vertex("ShiftVertex", shiftFactor=-1.5), 1, 4, lambda xs: xs[0] - 1.5),
        (
            oracle.vertex("L2NormalizeVertex", eps=1e-8),
            1,
            4,
            lambda xs: xs[0] / np.linalg.norm(xs[0], axis=1, keepdims=True),
        ),
        (
            oracle.vertex("L2Vertex"),
            2,
            1,
            lambda xs: np.linalg.norm(xs[0] - xs[1], axis=1, keepdims=True),
        ),
        (
            oracle.vertex("ReshapeVertex", reshapeOrder="c", newShape=[-1, 4]),
            1,
            4,
            lambda xs: xs[0],
        ),
    ],
)
def test_feed_forward_vertices(
    tmp_path: Path,
    spec: Mapping[str, Any],
    n_inputs: int,
    n_in: int,
    expected: Callable[[list[np.ndarray]], np.ndarray],
) -> None:
    """inputs [N, 4] -> the vertex -> dense head; output() and reference vs numpy."""
    rng = np.random.default_rng(12)
    names = [f"in{i}" for i in range(n_inputs)]
    head, w, b = _head(n_in, rng)
    graph = _graph(
        oracle.write_graph(
            tmp_path / "g.zip",
            names,
            [("v", spec, names), ("out", head, ["v"])],
            ["out"],
            np.float64,
        )
    )
    xs = [rng.normal(size=(3, 4)) for _ in names]
    want = expected(xs) @ w + b
    oracle.close(graph.output_single(*xs), want)
    (reference,) = ReferenceEvaluator(graph.to_onnx()).run(None, dict(zip(names, xs, strict=True)))
    oracle.close(reference, want)


def test_l2_normalize_keeps_tiny_vectors_finite(tmp_path: Path) -> None:
    eps = 0.5  # norms below eps are divided by eps, as DL4J's max(norm, eps)

    def expected(xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0] * 1e-3
        return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps))

    spec = oracle.vertex("L2NormalizeVertex", eps=eps)
    scale = oracle.vertex("ScaleVertex", scaleFactor=1e-3)
    rng = np.random.default_rng(3)
    head, w, b = _head(4, rng)
    graph = _graph(
        oracle.write_graph(
            tmp_path / "g.zip",
            ["in"],
            [("s", scale, ["in"]), ("v", spec, ["s"]), ("out", head, ["v"])],
            ["out"],
            np.float64,
        )
    )
    x = rng.normal(size=(3, 4))
    oracle.close(graph.output_single(x), expected([x]) @ w + b)


def test_stack_then_unstack_gives_each_part_back(tmp_path: Path) -> None:
    vertices: list[tuple[str, Any, Sequence[str]]] = [
        ("stack", oracle.vertex("StackVertex"), ["a", "b", "c"]),
        ("u1", oracle.vertex("UnstackVertex", **{"from": 1, "stackSize": 3}), ["stack"]),
        ("u2", oracle.vertex("UnstackVertex", **{"from": 2, "stackSize": 3}), ["stack"]),
        ("sub", oracle.vertex("ElementWiseVertex", op="Subtract"), ["u1", "u2"]),
    ]
    graph = _graph(
        oracle.write_graph(tmp_path / "g.zip", ["a", "b", "c"], vertices, ["stack", "sub"])
    )
    rng = np.random.default_rng(4)
    a, b, c = (rng.normal(size=(2, 3)).astype(np.float32) for _ in range(3))
    # no layer says what the inputs are: they are [batch, ?] feed-forward inputs
    stacked, diff = graph.output(a, b, c)
    np.testing.assert_allclose(stacked, np.concatenate([a, b, c]))
    np.testing.assert_allclose(diff, b - c)
    with pytest.raises(ValueError, match="output_single needs a graph with one output"):
        graph.output_single(a, b, c)


def test_f_order_reshape(tmp_path: Path) -> None:
    spec = oracle.vertex("ReshapeVertex", reshapeOrder="f", newShape=[3, 2, 2])
    graph = _graph(oracle.write_graph(tmp_path / "g.zip", ["in"], [("r", spec, ["in"])], ["r"]))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(graph.output_single(x), x.reshape((3, 2, 2), order="F"))


def _rnn_graph(
    tmp_path: Path, vertices: list[tuple[str, Any, Sequence[str]]], outputs: list[str]
) -> tuple[ComputationGraph, list[Param]]:
    """input "in" [N, 2, T] -> SimpleRnn "rnn" (3 units) -> the given vertices."""
    params = oracle.rnn_params(np.random.default_rng(5), 2, 3)
    body = oracle.recurrent_json("SimpleRnn", 2, 3, "tanh")
    rnn = layer(body.pop("@class"), params, **body)
    path = oracle.write_graph(
        tmp_path / "g.zip", ["in"], [("rnn", rnn, ["in"]), *vertices], outputs, np.float64
    )
    return _graph(path), params


def test_time_series_vertices(tmp_path: Path) -> None:
    vertices: list[tuple[str, Any, Sequence[str]]] = [
        ("last", oracle.vertex("LastTimeStepVertex", maskArrayInputName=None), ["rnn"]),
        ("dup", oracle.vertex("DuplicateToTimeSeriesVertex", inputName="in"), ["last"]),
        ("rev", oracle.vertex("ReverseTimeSeriesVertex", maskArrayInputName=None), ["rnn"]),
        ("subset", oracle.vertex("SubsetVertex", **{"from": 0, "to": 1}), ["rnn"]),
        ("merge", oracle.vertex("MergeVertex"), ["dup", "rev", "subset"]),
    ]
    graph, params = _rnn_graph(tmp_path, vertices, ["last", "merge"])
    x = np.random.default_rng(6).normal(size=(2, 2, 5))
    h = oracle.simple_rnn(x, *(p.array for p in params))
    last, merged = graph.output(x)
    oracle.close(last, h[:, :, -1])
    expected = np.concatenate(
        [np.repeat(h[:, :, -1:], 5, axis=2), oracle.reverse(h), h[:, :2]], axis=1
    )
    oracle.close(merged, expected)
    assert [_dims(o) for o in graph.to_onnx().graph.output] == [
        ["batch", None],
        ["batch", None, None],
    ]


def test_preprocessor_vertex_rnn_to_feed_forward(tmp_path: Path) -> None:
    pre = {"@class": "org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor"}
    vertices: list[tuple[str, Any, Sequence[str]]] = [
        ("flat", oracle.vertex("PreprocessorVertex", preProcessor=pre), ["rnn"]),
    ]
    graph, params = _rnn_graph(tmp_path, vertices, ["flat"])
    x = np.random.default_rng(7).normal(size=(2, 2, 4))
    h = oracle.simple_rnn(x, *(p.array for p in params))
    rows = h.transpose(2, 0, 1).reshape(-1, 3)  # DL4J: row t*N + n
    oracle.close(graph.output_single(x), rows)


def test_layer_vertex_preprocessor_is_applied(tmp_path: Path) -> None:
    pre = {"@class": "org.deeplearning4j.nn.conf.preprocessor.RnnToFeedForwardPreProcessor"}
    rng = np.random.default_rng(8)
    head, w, b = _head(3, rng)
    head = Layer(head.cls, {**head.fields, "preProcessor": pre}, head.params)
    graph, params = _rnn_graph(tmp_path, [("out", head, ["rnn"])], ["out"])
    x = rng.normal(size=(2, 2, 4))
    h = oracle.simple_rnn(x, *(p.array for p in params))
    oracle.close(graph.output_single(x), h.transpose(2, 0, 1).reshape(-1, 3) @ w + b)


def test_unsupported_vertices_and_layers_are_listed_at_once(tmp_path: Path) -> None:
    vertices: list[tuple[str, Any, Sequence[str]]] = [
        ("att", {"@class": "org.deeplearning4j.nn.conf.graph.AttentionVertex"}, ["in"]),
        ("odd", layer("com.example.OddLayer"), ["att"]),
        ("tail", {"@class": "com.example.TailVertex"}, ["odd"]),
    ]
    graph = _graph(oracle.write_graph(tmp_path / "g.zip", ["in"], vertices, ["tail"]))
    with pytest.raises(LoadError) as info:
        graph.to_onnx()
    message = str(info.value)
    assert "g.zip: cannot convert to ONNX: vertex 'att' (org.deeplearning4j" in message
    assert "and 2 more unsupported" in message
    assert "vertex 'odd': layer odd 'odd' (com.example.OddLayer)" in message
    assert "vertex 'tail' (com.example.TailVertex)" in message
    assert "register_layer" in message


def _conv1x1(scale: float, fmt: str = "NCHW") -> Layer:
    """A 1x1 convolution multiplying its 2 channels by ``scale`` (so the input kind is CNN)."""
    return layer(
        "ConvolutionLayer",
        [Param("b", np.zeros(2)), Param("W", scale * np.eye(2).reshape(2, 2, 1, 1))],
        nin=2,
        nout=2,
        kernelSize=[1, 1],
        stride=[1, 1],
        padding=[0, 0],
        convolutionMode="Truncate",
        cnn2dDataFormat=fmt,
        activationFn=oracle.activation_json("identity"),
    )


def _cnn_graph(tmp_path: Path, tail: Any) -> ComputationGraph:
    """input [N, 2, H, W] -> an identity 1x1 convolution -> tail."""
    vertices = [("conv", _conv1x1(1.0), ["in"]), ("tail", tail, ["conv"])]
    return _graph(oracle.write_graph(tmp_path / "g.zip", ["in"], vertices, ["tail"], np.float64))


def test_nhwc_branches_merge_on_channels_and_pool_over_height_and_width(tmp_path: Path) -> None:
    """NHWC activations: MergeVertex (no mergeAxis) concatenates the last axis, global pooling
    reduces axes 1 and 2 -- the channels stay where DL4J keeps them."""
    vertices: list[tuple[str, Any, Sequence[str]]] = [
        ("one", _conv1x1(1.0, "NHWC"), ["in"]),
        ("two", _conv1x1(2.0, "NHWC"), ["in"]),
        ("merge", oracle.vertex("MergeVertex"), ["one", "two"]),
        ("pool", layer("GlobalPoolingLayer", poolingType="MAX"), ["merge"]),
    ]
    graph = _graph(oracle.write_graph(tmp_path / "g.zip", ["in"], vertices, ["merge", "pool"]))
    x = np.random.default_rng(11).normal(size=(2, 3, 4, 2)).astype(np.float32)  # [N, H, W, C]
    merged, pooled = graph.output(x)
    oracle.close(merged, np.concatenate([x, 2 * x], axis=3))
    oracle.close(pooled, np.concatenate([x, 2 * x], axis=3).max(axis=(1, 2)))


def test_pool_helper_vertex_drops_first_row_and_column(tmp_path: Path) -> None:
    graph = _cnn_graph(tmp_path, oracle.vertex("PoolHelperVertex"))
    x = np.random.default_rng(9).normal(size=(2, 2, 4, 5))
    oracle.close(graph.output_single(x), x[:, :, 1:, 1:])


@pytest.mark.parametrize("collapse", [True, False])
def test_global_pooling_over_height_and_width(tmp_path: Path, collapse: bool) -> None:
    pool = layer("GlobalPoolingLayer", poolingType="AVG", collapseDimensions=collapse)
    graph = _cnn_graph(tmp_path, pool)
    x = np.random.default_rng(10).normal(size=(2, 2, 4, 5))
    expected = x.mean(axis=(2, 3), keepdims=not collapse)
    oracle.close(graph.output_single(x), expected)


def test_option_problems_after_a_failed_vertex_are_found_too(tmp_path: Path) -> None:
    """A vertex that fails while converting does not hide the problems of the ones after it."""
    vertices: list[tuple[str, Any, Sequence[str]]] = [
        ("sub", oracle.vertex("ElementWiseVertex", op="Subtract"), ["a", "b", "c"]),
        ("shape", oracle.vertex("ReshapeVertex", reshapeOrder="x", newShape=[2, 2]), ["sub"]),
    ]
    path = oracle.write_graph(tmp_path / "g.zip", ["a", "b", "c"], vertices, ["shape"])
    with pytest.raises(LoadError) as info:
        _graph(path).to_onnx()
    message = str(info.value)
    assert "vertex 'sub' (org.deeplearning4j.nn.conf.graph.ElementWiseVertex)" in message
    assert "op 'Subtract' with 3 inputs" in message
    assert "and 1 more unsupported: vertex 'shape'" in message
    assert "order 'x'" in message
