"""DL4J recurrent, embedding and global pooling layers -> ONNX, against numpy oracles of
DL4J's own equations (tests/convert/rnn_oracle.py), through output() and onnx.reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from omnihub.errors import LoadError
from omnihub.loaders.dl4j import ComputationGraph, MultiLayerNetwork, read_model_serializer
from onnx.reference import ReferenceEvaluator

from tests.convert import rnn_oracle as oracle
from tests.convert.dl4j_writer import Layer, Param, layer, write_mln

RNG_SEED = 20261205


def _mln(tmp_path: Path, *layers: Layer, dtype: Any = np.float64) -> MultiLayerNetwork:
    net = read_model_serializer(write_mln(tmp_path / "net.zip", layers, dtype))
    assert isinstance(net, MultiLayerNetwork)
    return net


def _both(net: MultiLayerNetwork | ComputationGraph, x: np.ndarray, expected: np.ndarray) -> None:
    """``output()`` (onnxruntime) and onnx.reference both give ``expected``."""
    got = net.output(x) if isinstance(net, MultiLayerNetwork) else net.output_single(x)
    oracle.close(got, expected)
    model = net.to_onnx()
    name = model.graph.input[0].name
    (reference,) = ReferenceEvaluator(model).run(None, {name: x.astype(got.dtype)})
    oracle.close(reference, expected)


def _recurrent(cls: str, params: list[Param], n_in: int, n: int, act: str, **fields: Any) -> Layer:
    body = oracle.recurrent_json(cls, n_in, n, act, **fields)
    body.pop("@class")
    return layer(cls, params, **body)


@pytest.mark.parametrize("cls", ["LSTM", "GravesLSTM"])
@pytest.mark.parametrize(
    ("act", "gate"), [("tanh", "sigmoid"), ("relu", "hardsigmoid"), ("softsign", "sigmoid")]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_cells_match_dl4j(tmp_path: Path, cls: str, act: str, gate: str, dtype: Any) -> None:
    """FLOAT tanh/sigmoid cells use ONNX's LSTM op (weights reordered to i, o, f, c and the
    peepholes to P), every other cell a Scan over DL4J's cell: both must match DL4J."""
    rng = np.random.default_rng(RNG_SEED)
    params = oracle.lstm_params(rng, 3, 4, peephole=cls == "GravesLSTM")
    net = _mln(
        tmp_path,
        _recurrent(cls, params, 3, 4, act, gateActivationFn=oracle.activation_json(gate)),
        dtype=dtype,
    )
    ops = {node.op_type for node in net.to_onnx().graph.node}
    onnx_lstm = dtype == np.float32 and (act, gate) == ("tanh", "sigmoid")
    assert ("LSTM" in ops, "Scan" in ops) == (onnx_lstm, not onnx_lstm)
    x = rng.normal(size=(2, 3, 6)).astype(dtype)
    expected = oracle.lstm(x.astype(np.float64), *(p.array for p in params), act=act, gate=gate)
    _both(net, x, expected)


def test_graves_peepholes_matter(tmp_path: Path) -> None:
    """The same weights with the peephole columns zeroed give a different output: the three
    extra columns are read, and from the right places (the oracle agrees either way)."""
    rng = np.random.default_rng(1)
    params = oracle.lstm_params(rng, 2, 3, peephole=True)
    x = rng.normal(size=(2, 2, 5))
    with_peep = oracle.lstm(x, *(p.array for p in params))
    rw = params[1].array.copy()
    rw[:, 12:] = 0
    assert not np.allclose(with_peep, oracle.lstm(x, params[0].array, rw, params[2].array))
    _both(_mln(tmp_path, _recurrent("GravesLSTM", params, 2, 3, "tanh")), x, with_peep)


@pytest.mark.parametrize("act", ["tanh", "relu", "identity"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simple_rnn_matches_dl4j(tmp_path: Path, act: str, dtype: Any) -> None:
    """FLOAT tanh: ONNX's RNN op; anything else: a Scan."""
    rng = np.random.default_rng(RNG_SEED)
    params = oracle.rnn_params(rng, 3, 5)
    net = _mln(tmp_path, _recurrent("SimpleRnn", params, 3, 5, act), dtype=dtype)
    onnx_rnn = dtype == np.float32 and act == "tanh"
    ops = {node.op_type for node in net.to_onnx().graph.node}
    assert ("RNN" in ops, "Scan" in ops) == (onnx_rnn, not onnx_rnn)
    x = rng.normal(size=(3, 3, 4)).astype(dtype)
    _both(net, x, oracle.simple_rnn(x.astype(np.float64), *(p.array for p in params), act=act))


def test_nwc_layout_takes_and_gives_time_major_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    params = oracle.lstm_params(rng, 3, 2, peephole=False)
    net = _mln(tmp_path, _recurrent("LSTM", params, 3, 2, "tanh", rnnDataFormat="NWC"))
    dims = net.to_onnx().graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "time", 3]
    x = rng.normal(size=(2, 5, 3))  # [N, T, C]
    expected = oracle.lstm(x.transpose(0, 2, 1), *(p.array for p in params))
    _both(net, x, expected.transpose(0, 2, 1))


@pytest.mark.parametrize(("act", "dtype"), [("softsign", np.float64), ("tanh", np.float32)])
def test_graves_bidirectional_lstm_sums_both_directions(
    tmp_path: Path, act: str, dtype: Any
) -> None:
    """Scan (softsign) and ONNX's LSTM op with direction="reverse" (FLOAT tanh)."""
    rng = np.random.default_rng(3)
    fwd = oracle.lstm_params(rng, 3, 2, peephole=True)
    bwd = oracle.lstm_params(rng, 3, 2, peephole=True)
    params = [Param(p.key + "F", p.array, "f") for p in fwd]
    params += [Param(p.key + "B", p.array, "f") for p in bwd]
    body = oracle.recurrent_json("GravesBidirectionalLSTM", 3, 2, act)
    body.pop("@class")
    net = _mln(tmp_path, layer("GravesBidirectionalLSTM", params, **body), dtype=dtype)
    x = rng.normal(size=(2, 3, 5))
    forward = oracle.lstm(x, *(p.array for p in fwd), act=act)
    backward = oracle.lstm(oracle.reverse(x), *(p.array for p in bwd), act=act)
    _both(net, x.astype(dtype), forward + oracle.reverse(backward))


@pytest.mark.parametrize("inner_format", ["NCW", "NWC"])
def test_bidirectional_follows_the_wrapped_layers_format(tmp_path: Path, inner_format: str) -> None:
    rng = np.random.default_rng(13)
    fwd, bwd = oracle.rnn_params(rng, 2, 3), oracle.rnn_params(rng, 2, 3)
    inner = oracle.recurrent_json("SimpleRnn", 2, 3, "relu", rnnDataFormat=inner_format)
    params = [Param("f" + p.key, p.array, p.order) for p in fwd]
    params += [Param("b" + p.key, p.array, p.order) for p in bwd]
    wrapper = layer("recurrent.Bidirectional", params, fwd=inner, bwd=inner, mode="CONCAT")
    path = oracle.write_graph(tmp_path / "g.zip", ["in"], [("bi", wrapper, ["in"])], ["bi"])
    graph = read_model_serializer(path)
    assert isinstance(graph, ComputationGraph)
    x = rng.normal(size=(2, 2, 4))
    forward = oracle.simple_rnn(x, *(p.array for p in fwd), act="relu")
    backward = oracle.simple_rnn(oracle.reverse(x), *(p.array for p in bwd), act="relu")
    expected = oracle.bidirectional(forward, backward, "CONCAT")  # [N, 6, T]
    if inner_format == "NWC":  # DL4J's [N, T, C] in and out, concatenated on the last axis
        x, expected = x.transpose(0, 2, 1), expected.transpose(0, 2, 1)
    np.testing.assert_allclose(
        graph.output_single(x.astype(np.float32)), expected, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("mode", ["CONCAT", "ADD", "MUL", "AVERAGE"])
@pytest.mark.parametrize("inner", ["LSTM", "SimpleRnn"])
def test_bidirectional_modes(tmp_path: Path, mode: str, inner: str) -> None:
    rng = np.random.default_rng(4)
    if inner == "SimpleRnn":
        fwd, bwd = oracle.rnn_params(rng, 3, 4), oracle.rnn_params(rng, 3, 4)
    else:
        fwd, bwd = (oracle.lstm_params(rng, 3, 4, peephole=False) for _ in range(2))
    inner_json = oracle.recurrent_json(inner, 3, 4, "relu")
    params = [Param("f" + p.key, p.array, p.order) for p in fwd]
    params += [Param("b" + p.key, p.array, p.order) for p in bwd]
    wrapper = layer(
        "recurrent.Bidirectional", params, fwd=inner_json, bwd=inner_json, mode=mode, nin=3, nout=4
    )
    net = _mln(tmp_path, wrapper)
    x = rng.normal(size=(2, 3, 5))
    run = oracle.simple_rnn if inner == "SimpleRnn" else oracle.lstm
    forward = run(x, *(p.array for p in fwd), act="relu")
    backward = run(oracle.reverse(x), *(p.array for p in bwd), act="relu")
    expected = oracle.bidirectional(forward, backward, mode)
    _both(net, x, expected)
    assert net.output(x).shape == (2, 8 if mode == "CONCAT" else 4, 5)


def test_last_time_step_then_output_layer(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    params = oracle.lstm_params(rng, 3, 4, peephole=False)
    wrapped = layer(
        "recurrent.LastTimeStep", params, underlying=oracle.recurrent_json("LSTM", 3, 4, "tanh")
    )
    w, b = rng.normal(size=(4, 2)), rng.normal(size=2)
    out = oracle.dense("OutputLayer", w, b, "softmax")
    net = _mln(tmp_path, wrapped, out)
    x = rng.normal(size=(3, 3, 7))
    last = oracle.lstm(x, *(p.array for p in params))[:, :, -1]
    _both(net, x, oracle.softmax(last @ w + b, axis=1))


def test_rnn_output_layer_softmax_per_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    params = oracle.rnn_params(rng, 2, 3)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    head = oracle.dense("RnnOutputLayer", w, b, "softmax")
    net = _mln(tmp_path, _recurrent("SimpleRnn", params, 2, 3, "tanh"), head)
    x = rng.normal(size=(2, 2, 6))
    h = oracle.simple_rnn(x, *(p.array for p in params))
    expected = oracle.softmax(np.einsum("nct,co->not", h, w) + b[None, :, None], axis=1)
    _both(net, x, expected)
    np.testing.assert_allclose(net.output(x).sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
def test_time_distributed_dense_on_every_step(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(12)
    params = oracle.rnn_params(rng, 2, 3)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    inner = {"@class": oracle.LAYERS + "DenseLayer", "nin": 3, "nout": 4}
    inner["activationFn"] = oracle.activation_json("softmax")
    wrapper = layer(
        "recurrent.TimeDistributed",
        [Param("W", w, "f"), Param("b", b)],
        underlying=inner,
        rnnDataFormat=layout,
    )
    rnn = _recurrent("SimpleRnn", params, 2, 3, "tanh", rnnDataFormat=layout)
    net = _mln(tmp_path, rnn, wrapper)
    x = rng.normal(size=(2, 2, 5))
    h = oracle.simple_rnn(x, *(p.array for p in params))  # [N, 3, T]
    expected = oracle.softmax(np.einsum("nct,co->nto", h, w) + b, axis=2)  # [N, T, 4]
    if layout == "NWC":
        _both(net, x.transpose(0, 2, 1), expected)
    else:
        _both(net, x, expected.transpose(0, 2, 1))


def _pooling_graph(tmp_path: Path, **fields: Any) -> ComputationGraph:
    """input [N, 2, T] -> identity SimpleRnn-free path: RnnOutputLayer with W = I (identity
    activation) gives the input back as RNN activations, then the pooling layer."""
    eye = np.eye(3)
    ident = oracle.dense("RnnOutputLayer", eye, np.zeros(3), "identity")
    pool = layer("GlobalPoolingLayer", **fields)
    path = oracle.write_graph(
        tmp_path / "pool.zip",
        ["in"],
        [("ident", ident, ["in"]), ("pool", pool, ["ident"])],
        ["pool"],
        np.float64,
    )
    graph = read_model_serializer(path)
    assert isinstance(graph, ComputationGraph)
    return graph


@pytest.mark.parametrize(
    ("pooling", "reduce"),
    [
        ("MAX", lambda x, axes, keep: x.max(axis=axes, keepdims=keep)),
        ("AVG", lambda x, axes, keep: x.mean(axis=axes, keepdims=keep)),
        ("SUM", lambda x, axes, keep: x.sum(axis=axes, keepdims=keep)),
        (
            "PNORM",
            lambda x, axes, keep: (np.abs(x) ** 3).sum(axis=axes, keepdims=keep) ** (1 / 3),
        ),
    ],
)
@pytest.mark.parametrize("collapse", [True, False])
def test_global_pooling_over_time(
    tmp_path: Path, pooling: str, reduce: Any, collapse: bool
) -> None:
    graph = _pooling_graph(
        tmp_path, poolingType=pooling, pnorm=3, collapseDimensions=collapse, poolingDimensions=None
    )
    x = np.random.default_rng(7).normal(size=(2, 3, 5))
    _both(graph, x, reduce(x, (2,), not collapse))


def test_global_pooling_over_features_when_configured(tmp_path: Path) -> None:
    graph = _pooling_graph(tmp_path, poolingType="MAX", poolingDimensions=[1])
    x = np.random.default_rng(8).normal(size=(2, 3, 5))
    _both(graph, x, x.max(axis=1))


def test_embedding_layers_look_up_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    w, b = rng.normal(size=(10, 3)), rng.normal(size=3)
    params = [Param("W", w, "f"), Param("b", b)]
    act = oracle.activation_json("tanh")
    vertices = [
        ("emb", layer("EmbeddingLayer", params, nin=10, nout=3, activationFn=act), ["ids"]),
        ("seq", layer("EmbeddingSequenceLayer", params, nin=10, nout=3, activationFn=act), ["s"]),
    ]
    path = oracle.write_graph(tmp_path / "emb.zip", ["ids", "s"], vertices, ["emb", "seq"])
    graph = read_model_serializer(path)
    assert isinstance(graph, ComputationGraph)
    ids = np.array([[3.0], [0.0], [9.0]], np.float32)
    seq = np.array([[1, 2, 3, 4], [9, 8, 7, 6]], np.float32)
    emb, sequence = graph.output(ids, seq)
    np.testing.assert_allclose(emb, np.tanh(w[[3, 0, 9]] + b), rtol=1e-5)
    expected = np.tanh(w[seq.astype(int)] + b).transpose(0, 2, 1)  # [N, nOut, T]
    np.testing.assert_allclose(sequence, expected, rtol=1e-5)
    shapes = {
        i.name: [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in dims]
        for i in graph.to_onnx().graph.input
        for dims in [i.type.tensor_type.shape.dim]
    }
    assert shapes == {"ids": ["batch", 1], "s": ["batch", None]}  # [N, 1] ids; [N, T] sequences


def test_unsupported_recurrent_options_are_listed_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    norm = _recurrent("SimpleRnn", oracle.rnn_params(rng, 2, 2), 2, 2, "tanh", hasLayerNorm=True)
    norm = Layer(
        norm.cls, norm.fields, (*norm.params, Param("gx", np.ones(2)), Param("gr", np.ones(2)))
    )
    odd = layer(
        "recurrent.Bidirectional",
        [Param("f" + p.key, p.array, p.order) for p in oracle.rnn_params(rng, 2, 2)]
        + [Param("b" + p.key, p.array, p.order) for p in oracle.rnn_params(rng, 2, 2)],
        fwd=oracle.recurrent_json("SimpleRnn", 2, 2, "tanh"),
        bwd=oracle.recurrent_json("SimpleRnn", 2, 2, "tanh"),
        mode="SOMETHING",
        nin=2,
        nout=2,
    )
    net = _mln(tmp_path, norm, odd)
    with pytest.raises(LoadError, match=r"hasLayerNorm.*and 1 more unsupported.*mode 'SOMETHING'"):
        net.to_onnx()


def test_float_model_keeps_float_weights_and_survives_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    params = oracle.lstm_params(rng, 2, 3, peephole=True)
    net = _mln(tmp_path, _recurrent("GravesLSTM", params, 2, 3, "tanh"), dtype=np.float32)
    model = net.to_onnx()
    floats = {t.data_type for t in model.graph.initializer} - {onnx.TensorProto.INT64}
    assert floats == {onnx.TensorProto.FLOAT}
    onnx.save(model, tmp_path / "m.onnx")
    loaded = onnx.load(tmp_path / "m.onnx")
    x = rng.normal(size=(4, 2, 3)).astype(np.float32)
    (again,) = ReferenceEvaluator(loaded).run(None, {"input": x})
    oracle.close(again, net.output(x))


def test_half_model_behind_a_feed_forward_to_rnn_preprocessor(tmp_path: Path) -> None:
    """HALF: weights stay FLOAT16 initializers; the recurrent layers compute in FLOAT (a FLOAT16
    FeedForwardToRnn transpose feeding the LSTM's MatMul crashes onnxruntime 1.32's
    MatmulTransposeFusion); onnxruntime directly and onnx.reference agree with the oracle."""
    rng = np.random.default_rng(14)
    w_dense = rng.normal(size=(3, 3))
    params = oracle.lstm_params(rng, 3, 4, peephole=True)
    w_out, b_out = rng.normal(size=(4, 2)), rng.normal(size=2)
    layers = [
        oracle.dense("DenseLayer", w_dense, np.zeros(3), "tanh"),
        _recurrent("GravesLSTM", params, 3, 4, "tanh"),
        oracle.dense("RnnOutputLayer", w_out, b_out, "softmax"),
    ]
    pre = {1: {"cls": "FeedForwardToRnnPreProcessor", "fields": {}}}
    net = read_model_serializer(write_mln(tmp_path / "h.zip", layers, np.float16, pre))
    assert isinstance(net, MultiLayerNetwork)
    model = net.to_onnx()
    floats = {t.data_type for t in model.graph.initializer if t.data_type != onnx.TensorProto.INT64}
    assert onnx.TensorProto.FLOAT16 in floats
    assert all(
        len(t.dims) < 2 or t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer
    )
    x = rng.normal(size=(6, 3)).astype(np.float16)  # rows t*N + n: N = 6 -> T = 1
    (direct,) = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})
    assert direct.dtype == np.float16
    h = np.tanh(x.astype(np.float64) @ w_dense)[:, :, None]  # [N, 3, 1]
    h = oracle.lstm(h, *(p.array for p in params))
    expected = oracle.softmax(np.einsum("nct,co->not", h, w_out) + b_out[None, :, None], axis=1)
    oracle.close(direct, expected, rtol=1e-2, atol=1e-2)
    (reference,) = ReferenceEvaluator(model).run(None, {"input": x})
    oracle.close(reference, direct, rtol=1e-2, atol=1e-2)
