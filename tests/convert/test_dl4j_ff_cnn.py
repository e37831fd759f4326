"""DL4J feed-forward and CNN layers -> ONNX, on real files and hand-built networks."""

from __future__ import annotations

import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from omnihub.convert import ACTIVATIONS, BATCH, OPSET, parse_activation
from omnihub.convert._run import Runner
from omnihub.errors import LoadError
from omnihub.loaders.dl4j import MultiLayerNetwork, read_model_serializer

from tests.convert.dl4j_writer import Layer, Param, layer, write_mln
from tests.convert.fixtures import reference_output
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


# -- hand-built networks against numpy transliterations of DL4J's Java/libnd4j -------------------

ACT = "org.nd4j.linalg.activations.impl.Activation"


def _net(tmp_path: Path, layers: list[Layer], dtype: Any = np.float64, pre: Any = None) -> Any:
    return read_model_serializer(write_mln(tmp_path / "net.zip", layers, dtype, pre))


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """DL4J's Same mode: ceil(in/s) outputs, floor(total/2) padding before."""
    eff = (k - 1) * d + 1
    total = max((math.ceil(size / s) - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _np_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    *,
    s: tuple[int, int],
    d: tuple[int, int],
    pads: tuple[tuple[int, int], tuple[int, int]],
) -> np.ndarray:
    """Cross-correlation with stride s, dilation d, explicit (before, after) padding."""
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    kh, kw = w.shape[2:]
    eh, ew = (kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1
    oh, ow = (xp.shape[2] - eh) // s[0] + 1, (xp.shape[3] - ew) // s[1] + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * s[0] : i * s[0] + eh : d[0], j * s[1] : j * s[1] + ew : d[1]]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return np.asarray(out + b.reshape(1, -1, 1, 1))


@pytest.mark.parametrize(
    ("mode", "stride", "dilation", "padding"),
    [
        ("Same", (2, 2), (2, 1), (0, 0)),
        ("Same", (3, 1), (1, 1), (0, 0)),
        ("Truncate", (2, 1), (1, 2), (1, 2)),
        ("Strict", (1, 1), (1, 1), (0, 0)),
    ],
)
def test_convolution_modes_match_numpy(
    mode: str,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int],
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    conv = layer(
        "ConvolutionLayer",
        [Param("b", b), Param("W", w)],
        nin=2,
        nout=3,
        kernelSize=[3, 2],
        stride=list(stride),
        dilation=list(dilation),
        padding=list(padding),
        convolutionMode=mode,
        activationFn={"@class": ACT + "Identity"},
    )
    x = rng.normal(size=(2, 2, 7, 6))
    if mode == "Same":
        pads = (_same_pads(7, 3, stride[0], dilation[0]), _same_pads(6, 2, stride[1], dilation[1]))
    else:
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    expected = _np_conv2d(x, w, b, s=stride, d=dilation, pads=pads)
    out = _net(tmp_path, [conv]).output(x)
    if mode == "Same":
        assert out.shape[2:] == (math.ceil(7 / stride[0]), math.ceil(6 / stride[1]))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_causal_convolution1d_matches_numpy(tmp_path: Path) -> None:
    """Conv1D over [N, C, T], Causal: (k-1)*d zeros before, output length T."""
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(4, 3, 2, 1)), rng.normal(size=4)
    conv = layer(
        "Convolution1DLayer",
        [Param("b", b), Param("W", w)],
        nin=3,
        nout=4,
        kernelSize=[2, 1],
        stride=[1, 1],
        dilation=[2, 1],
        padding=[0, 0],
        convolutionMode="Causal",
        activationFn={"@class": ACT + "Identity"},
    )
    x = rng.normal(size=(2, 3, 6))
    x4 = np.pad(x, ((0, 0), (0, 0), (2, 0)))[..., None]
    expected = _np_conv2d(x4, w, b, s=(1, 1), d=(2, 1), pads=((0, 0), (0, 0)))[..., 0]
    np.testing.assert_allclose(_net(tmp_path, [conv]).output(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "stride", "padding"), [("Truncate", 2, 1), ("Same", 2, 0), ("Same", 3, 0)]
)
def test_deconvolution2d_matches_numpy(
    mode: str, stride: int, padding: int, tmp_path: Path
) -> None:
    """Transposed conv: scatter every input over a k x k window, then DL4J's crop."""
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(2, 3, 3, 3)), rng.normal(size=3)  # [nIn, nOut, kH, kW]
    deconv = layer(
        "Deconvolution2D",
        [Param("b", b), Param("W", w)],
        nin=2,
        nout=3,
        kernelSize=[3, 3],
        stride=[stride, stride],
        padding=[padding, padding],
        dilation=[1, 1],
        convolutionMode=mode,
        activationFn={"@class": ACT + "Identity"},
    )
    x = rng.normal(size=(1, 2, 4, 5))
    full = np.zeros((1, 3, (4 - 1) * stride + 3, (5 - 1) * stride + 3))
    for i in range(4):
        for j in range(5):
            full[:, :, i * stride : i * stride + 3, j * stride : j * stride + 3] += np.einsum(
                "nc,cokl->nokl", x[:, :, i, j], w
            )
    if mode == "Same":
        top = (3 - stride) // 2 if stride <= 3 else 0
        expected = full[:, :, top : top + 4 * stride, top : top + 5 * stride]
    else:
        expected = full[:, :, padding : full.shape[2] - padding, padding : full.shape[3] - padding]
    expected = expected + b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(_net(tmp_path, [deconv]).output(x), expected, rtol=1e-5, atol=1e-6)


def _np_pool(x: np.ndarray, k: int, s: int, pads: tuple[int, int], fn: Any) -> np.ndarray:
    """Pool windows over the real (unpadded) positions of x ([N, C, H, W], square)."""
    h, w = x.shape[2:]
    oh, ow = (h + sum(pads) - k) // s + 1, (w + sum(pads) - k) // s + 1
    out = np.zeros((*x.shape[:2], oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s - pads[0], j * s - pads[0]
            window = x[:, :, max(r0, 0) : r0 + k, max(c0, 0) : c0 + k]
            out[:, :, i, j] = fn(window.reshape(*x.shape[:2], -1), k * k)
    return out


@pytest.mark.parametrize(
    ("pooling", "fn"),
    [
        ("MAX", lambda v, n: v.max(axis=2)),
        ("AVG", lambda v, n: v.mean(axis=2)),  # DL4J's default: padding not in the divisor
        ("SUM", lambda v, n: v.sum(axis=2)),
        ("PNORM", lambda v, n: (np.abs(v) ** 3).sum(axis=2) ** (1 / 3)),
    ],
)
@pytest.mark.parametrize("mode", ["Same", "Truncate"])
def test_pooling_matches_numpy(pooling: str, fn: Any, mode: str, tmp_path: Path) -> None:
    pool = layer(
        "SubsamplingLayer",
        kernelSize=[3, 3],
        stride=[2, 2],
        padding=[1, 1],
        poolingType=pooling,
        pnorm=3,
        convolutionMode=mode,
        dilation=[1, 1],
    )
    x = np.random.default_rng(3).normal(size=(2, 2, 7, 8))
    pads = (1, 1) if mode == "Truncate" else _same_pads(7, 3, 2, 1)
    if mode == "Same":  # 7 and 8 both pad (1, 1) with k=3, s=2
        assert _same_pads(8, 3, 2, 1) == (0, 1)
        x = x[:, :, :, :7]
    np.testing.assert_allclose(
        _net(tmp_path, [pool]).output(x), _np_pool(x, 3, 2, pads, fn), rtol=1e-5, atol=1e-6
    )


def test_batch_normalization_log_std_and_locked_gamma_beta(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    mean, log_std = rng.normal(size=3), rng.uniform(-0.5, 0.5, size=3)
    bn = layer(
        "BatchNormalization",
        [Param("mean", mean), Param("log10stdev", log_std)],
        nin=3,
        nout=3,
        useLogStd=True,
        lockGammaBeta=True,
        gamma=2.0,
        beta=0.5,
        eps=1e-5,
        activationFn={"@class": ACT + "Identity"},
    )
    x = rng.normal(size=(2, 3, 4, 4))
    var = (10.0**log_std) ** 2
    expected = 2.0 * (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(var + 1e-5).reshape(1, 3, 1, 1) + 0.5
    conv = layer(
        "ConvolutionLayer",
        [Param("b", np.zeros(3)), Param("W", np.eye(3).reshape(3, 3, 1, 1))],
        nin=3,
        nout=3,
        kernelSize=[1, 1],
        stride=[1, 1],
        padding=[0, 0],
        activationFn={"@class": ACT + "Identity"},
    )
    np.testing.assert_allclose(_net(tmp_path, [conv, bn]).output(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_local_response_normalization_matches_dl4j_formula(n: int, tmp_path: Path) -> None:
    lrn = layer("LocalResponseNormalization", n=float(n), k=2.0, alpha=0.1, beta=0.75)
    x = np.random.default_rng(5).normal(size=(3, 6, 2, 2))  # batch != channels on purpose
    half = n // 2
    sq = np.pad(x**2, ((0, 0), (half, half), (0, 0), (0, 0)))
    window = np.stack([sq[:, c : c + 2 * half + 1].sum(axis=1) for c in range(6)], axis=1)
    expected = x / (2.0 + 0.1 * window) ** 0.75
    conv = layer(
        "ConvolutionLayer",
        [Param("b", np.zeros(6)), Param("W", np.eye(6).reshape(6, 6, 1, 1))],
        nin=6,
        nout=6,
        kernelSize=[1, 1],
        stride=[1, 1],
        padding=[0, 0],
        activationFn={"@class": ACT + "Identity"},
    )
    np.testing.assert_allclose(
        _net(tmp_path, [conv, lrn]).output(x), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_padding_cropping_upsampling_match_numpy(fmt: str, tmp_path: Path) -> None:
    layers = [
        layer("ZeroPaddingLayer", padding=[1, 2, 0, 3], dataFormat=fmt),
        layer("Cropping2D", cropping=[2, 0, 1, 1], dataFormat=fmt),
        layer("Upsampling2D", size=[2, 3], format=fmt),
        layer(
            "SubsamplingLayer",
            kernelSize=[1, 1],
            stride=[1, 1],
            poolingType="MAX",
            cnn2dDataFormat=fmt,
        ),
    ]
    x = np.random.default_rng(6).normal(size=(2, 3, 4, 5))  # NCHW
    y = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 3)))[:, :, 2:, 1:-1]
    y = np.repeat(np.repeat(y, 2, axis=2), 3, axis=3)
    if fmt == "NHWC":
        x, y = x.transpose(0, 2, 3, 1), y.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(_net(tmp_path, layers).output(x), y)


def _dense_identity(n_in: int, n_out: int, w: np.ndarray) -> Layer:
    return layer(
        "DenseLayer",
        [Param("W", w, "f"), Param("b", np.zeros(n_out))],
        nin=n_in,
        nout=n_out,
        activationFn={"@class": ACT + "Identity"},
    )


def _pre(cls: str, **fields: Any) -> dict[str, Any]:
    return {"cls": cls, "fields": fields}


def test_rnn_feed_forward_preprocessors_use_dl4j_orders(tmp_path: Path) -> None:
    """RnnToFeedForward: permute(0,2,1) then reshape('f', N*T, F); FeedForwardToRnn: the
    reverse (transliterated from DL4J's preProcess)."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=(3, 2))
    layers = [
        _dense_identity(3, 2, w),
        layer("ActivationLayer", activationFn={"@class": ACT + "Identity"}),
    ]
    pre = {0: _pre("RnnToFeedForwardPreProcessor"), 1: _pre("FeedForwardToRnnPreProcessor")}
    x = rng.normal(size=(4, 3, 5))  # [N, F, T]
    rows = np.reshape(x.transpose(0, 2, 1), (4 * 5, 3), order="F")
    y2d = rows @ w
    expected = np.reshape(y2d, (4, 5, 2), order="F").transpose(0, 2, 1)
    net = _net(tmp_path, layers, pre=pre)
    assert [
        d.dim_param or d.dim_value for d in net.to_onnx().graph.input[0].type.tensor_type.shape.dim
    ] == [BATCH, 3, "time"]
    np.testing.assert_allclose(net.output(x), expected, rtol=1e-5, atol=1e-6)


def test_cnn_rnn_preprocessors_use_dl4j_orders(tmp_path: Path) -> None:
    """RnnToCnn then CnnToRnn around a 1x1 convolution, orders as in DL4J's preProcess."""
    rng = np.random.default_rng(8)
    c, h, w_, t, n = 2, 3, 2, 4, 3
    kernel = rng.normal(size=(5, c, 1, 1))
    conv = layer(
        "ConvolutionLayer",
        [Param("b", np.zeros(5)), Param("W", kernel)],
        nin=c,
        nout=5,
        kernelSize=[1, 1],
        stride=[1, 1],
        padding=[0, 0],
        activationFn={"@class": ACT + "Identity"},
    )
    pre = {
        0: _pre("RnnToCnnPreProcessor", inputHeight=h, inputWidth=w_, numChannels=c),
        1: _pre("CnnToRnnPreProcessor", inputHeight=h, inputWidth=w_, numChannels=5),
    }
    layers = [conv, layer("ActivationLayer", activationFn={"@class": ACT + "Identity"})]
    x = rng.normal(size=(n, c * h * w_, t))
    rows = np.reshape(x.transpose(0, 2, 1), (n * t, c * h * w_), order="F")
    images = rows.reshape(n * t, c, h, w_)
    conv_out = np.einsum("bchw,oc->bohw", images, kernel[:, :, 0, 0])
    flat = conv_out.reshape(n * t, -1)
    expected = np.reshape(flat, (n, t, 5 * h * w_), order="F").transpose(0, 2, 1)
    np.testing.assert_allclose(
        _net(tmp_path, layers, pre=pre).output(x), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_feed_forward_cnn_preprocessors_are_c_order_reshapes(fmt: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    pool = layer(
        "SubsamplingLayer", kernelSize=[1, 1], stride=[1, 1], poolingType="MAX", cnn2dDataFormat=fmt
    )
    w = rng.normal(size=(2 * 3 * 4, 2))
    pre = {
        0: _pre(
            "FeedForwardToCnnPreProcessor", inputHeight=3, inputWidth=4, numChannels=2, format=fmt
        ),
        1: _pre(
            "CnnToFeedForwardPreProcessor", inputHeight=3, inputWidth=4, numChannels=2, format=fmt
        ),
    }
    x = rng.normal(size=(5, 24))
    np.testing.assert_allclose(
        _net(tmp_path, [pool, _dense_identity(24, 2, w)], pre=pre).output(x),
        x @ w,
        rtol=1e-6,
        atol=1e-8,
    )


# -- activations -----------------------------------------------------------------------------


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-v)))


def _rational_tanh(v: np.ndarray) -> np.ndarray:
    y = 2 * v / 3
    return np.asarray(1.7159 * np.sign(y) * (1 - 1 / (1 + np.abs(y) + y**2 + 1.41645 * y**4)))


ACTIVATION_ORACLES: list[tuple[str, dict[str, Any], Any]] = [
    ("Cube", {}, lambda v: v**3),
    ("ELU", {"alpha": 0.7}, lambda v: np.where(v > 0, v, 0.7 * (np.exp(v) - 1))),
    ("GELU", {}, lambda v: v * _sigmoid(1.702 * v)),
    (
        "GELU",
        {"precise": True},
        lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3))),
    ),
    ("HardSigmoid", {}, lambda v: np.clip(0.2 * v + 0.5, 0, 1)),
    ("HardTanH", {}, lambda v: np.clip(v, -1, 1)),
    ("Identity", {}, lambda v: v),
    ("LReLU", {"alpha": 0.2}, lambda v: np.where(v > 0, v, 0.2 * v)),
    ("Mish", {}, lambda v: v * np.tanh(np.log1p(np.exp(v)))),
    ("RationalTanh", {}, _rational_tanh),
    ("RectifiedTanh", {}, lambda v: np.maximum(np.tanh(v), 0)),
    ("ReLU", {}, lambda v: np.maximum(v, 0)),
    ("ReLU6", {}, lambda v: np.clip(v, 0, 6)),
    ("RReLU", {"l": 0.1, "u": 0.3}, lambda v: np.where(v > 0, v, 0.2 * v)),
    (
        "SELU",
        {},
        lambda v: 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * (np.exp(v) - 1)),
    ),
    ("Sigmoid", {}, _sigmoid),
    ("Softmax", {}, lambda v: np.exp(v) / np.exp(v).sum(axis=1, keepdims=True)),
    ("SoftPlus", {}, lambda v: np.log1p(np.exp(v))),
    ("SoftSign", {}, lambda v: v / (1 + np.abs(v))),
    ("Swish", {}, lambda v: v * _sigmoid(v)),
    ("TanH", {}, np.tanh),
    ("ThresholdedReLU", {"theta": 0.5}, lambda v: np.where(v > 0.5, v, 0)),
]


def test_every_activation_has_an_oracle() -> None:
    assert {
        parse_activation({"@class": ACT + name})[0] for name, _, _ in ACTIVATION_ORACLES
    } == set(ACTIVATIONS)


@pytest.mark.parametrize(
    ("name", "params", "oracle"),
    ACTIVATION_ORACLES,
    ids=[f"{a}{b}" for a, b, _ in ACTIVATION_ORACLES],
)
def test_activation_matches_nd4j_formula(
    name: str, params: dict[str, Any], oracle: Any, tmp_path: Path
) -> None:
    act = layer("ActivationLayer", activationFn={"@class": ACT + name, **params})
    x = np.random.default_rng(10).normal(scale=2.0, size=(4, 6))
    w = np.eye(6)
    net = _net(tmp_path, [_dense_identity(6, 6, w), act])
    np.testing.assert_allclose(net.output(x), oracle(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "spec",
    [{"TanH": {}}, "tanh", {"@class": ACT + "TanH"}],
    ids=["pre-1.0 wrapper", "0.x string", "1.0 @class"],
)
def test_activation_dialects(spec: Any) -> None:
    assert parse_activation(spec)[0] == "tanh"


# -- errors, fallback, caching -----------------------------------------------------------------


def test_every_unsupported_layer_is_listed_at_once(tmp_path: Path) -> None:
    layers = [
        _dense_identity(2, 2, np.eye(2)),
        Layer("com.example.Mystery", {}, ()),
        layer("SubsamplingLayer", kernelSize=[2, 2], stride=[1, 1], poolingType="FANCY"),
        Layer("com.example.Other", {}, ()),
    ]
    net = _net(tmp_path, layers)
    with pytest.raises(LoadError) as info:
        net.to_onnx()
    message = str(info.value)
    assert message.count("no converter") == 2
    assert "com.example.Mystery" in message
    assert "com.example.Other" in message
    assert "(and 1 more unsupported" in message


def test_unsupported_option_is_reported_with_the_layer(tmp_path: Path) -> None:
    layers = [
        layer(
            "ConvolutionLayer",
            [Param("b", np.zeros(1)), Param("W", np.ones((1, 1, 1, 1)))],
            nin=1,
            nout=1,
            kernelSize=[1, 1],
            stride=[1, 1],
            padding=[0, 0],
            activationFn={"@class": ACT + "Nope"},
        ),
        layer("SubsamplingLayer", kernelSize=[2, 2], stride=[1, 1], poolingType="FANCY"),
    ]
    with pytest.raises(LoadError) as info:
        _net(tmp_path, layers).to_onnx()
    assert (
        "layer 0 'layer0' (org.deeplearning4j.nn.conf.layers.ConvolutionLayer): activation 'nope'"
        in str(info.value)
    )
    assert "poolingType 'FANCY'" in str(info.value)


def test_without_onnxruntime_the_reference_evaluator_runs_with_a_notice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _iris().output(IRIS)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    net = _iris()
    with pytest.warns(
        RuntimeWarning, match="onnxruntime is not installed: running with onnx.reference"
    ):
        out = net.output(IRIS)
    assert net._session_slot["runner"]._session.backend == "reference"
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_concurrent_first_calls_build_one_session() -> None:
    runner = Runner()
    model = _iris().to_onnx()
    builds = []

    def build() -> onnx.ModelProto:
        builds.append(1)
        time.sleep(0.05)
        return model

    with ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(lambda _: runner.session(build, "iris"), range(8)))
    assert len(builds) == 1
    assert all(s is sessions[0] for s in sessions)


def test_large_weights_are_checked_without_their_bytes(tmp_path: Path) -> None:
    """A model with a > 1 MiB initializer is still checked (a broken graph is refused)."""
    from omnihub.convert import OnnxBuilder

    b = OnnxBuilder("big", np.float32)
    x = b.input("x", None, [BATCH, 600])
    y = b.node("MatMul", [x, b.initializer(np.ones((600, 600), np.float32))])
    b.output(y, "y", shape=[BATCH, 600])
    model = b.build()
    assert len(model.graph.initializer[0].raw_data) == 600 * 600 * 4
    bad = OnnxBuilder("bad", np.float32)
    x = bad.input("x", None, [BATCH, 500])
    y = bad.node("MatMul", [x, bad.initializer(np.ones((600, 600), np.float32))])
    bad.output(y, "y", shape=[BATCH, 600])
    with pytest.raises(onnx.shape_inference.InferenceError):
        bad.build()


_MEMORY_CHILD = """
import sys
from omnihub.loaders.dl4j import read_model_serializer
import onnx, onnxruntime  # imported before measuring: library code is not weights

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

net = read_model_serializer(sys.argv[1])
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM, the peak resident size
model = net.to_onnx()
print(net.params.nbytes, status("VmHWM") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_conversion_copies_the_weights_once(tmp_path: Path) -> None:
    """Peak memory while converting: one copy of the weights (+ one tensor in flight), not two."""
    import subprocess

    n = 800  # 8 layers x 800 x 800 float32 = 19.5 MiB of weights
    layers = [_dense_identity(n, n, np.full((n, n), 0.5)) for _ in range(8)]
    path = write_mln(tmp_path / "big.zip", layers, np.float32)
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(path)], capture_output=True, text=True, check=True
    )
    weights, peak = (int(v) for v in out.stdout.split())
    assert weights == 8 * (n * n + n) * 4
    assert peak < 1.6 * weights, f"converting {weights} bytes of weights peaked at +{peak} bytes"


def _runtimes_agree(net: Any, x: np.ndarray) -> np.ndarray:
    out = net.output(x)
    ref = reference_output(net.to_onnx(), {"input": x})
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    return np.asarray(out)


def test_1d_layers_on_rnn_input(tmp_path: Path) -> None:
    """Conv1D, Subsampling1D, ZeroPadding1D, Cropping1D, Upsampling1D on [N, C, T]."""
    rng = np.random.default_rng(11)
    layers = [
        layer(
            "Convolution1DLayer",
            [Param("b", rng.normal(size=4)), Param("W", rng.normal(size=(4, 2, 3, 1)))],
            nin=2,
            nout=4,
            kernelSize=[3, 1],
            stride=[1, 1],
            padding=[1, 0],
            dilation=[1, 1],
            convolutionMode="Truncate",
            activationFn={"@class": ACT + "TanH"},
        ),
        layer(
            "Subsampling1DLayer",
            kernelSize=[2, 1],
            stride=[2, 1],
            padding=[0, 0],
            poolingType="MAX",
        ),
        layer("ZeroPadding1DLayer", padding=[1, 2]),
        layer("Upsampling1D", size=[2]),
        layer("Cropping1D", cropping=[1, 3]),
    ]
    x = rng.normal(size=(2, 2, 9))
    out = _runtimes_agree(_net(tmp_path, layers), x)
    # conv keeps 9 steps, pooling 4, padding 7, upsampling 14, cropping 10
    assert out.shape == (2, 4, 10)
    # [0, a, a, b, b, c, c, d, d, 0]: the zero padding, repeated, then cropped
    assert np.all(out[:, :, 0] == 0)
    assert np.all(out[:, :, -1] == 0)


@pytest.mark.parametrize("fmt", ["NCDHW", "NDHWC"])
def test_3d_layers(fmt: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    layers = [
        layer(
            "Convolution3D",
            [Param("b", rng.normal(size=3)), Param("W", rng.normal(size=(3, 2, 2, 2, 2)))],
            nin=2,
            nout=3,
            kernelSize=[2, 2, 2],
            stride=[1, 1, 1],
            padding=[0, 0, 0],
            dilation=[1, 1, 1],
            convolutionMode="Same",
            dataFormat=fmt,
            activationFn={"@class": ACT + "ReLU"},
        ),
        layer(
            "Subsampling3DLayer",
            kernelSize=[2, 2, 2],
            stride=[2, 2, 2],
            padding=[0, 0, 0],
            poolingType="AVG",
            dataFormat=fmt,
            convolutionMode="Truncate",
            dilation=[1, 1, 1],
        ),
        layer("Upsampling3D", size=[1, 2, 1], dataFormat=fmt),
        layer("ZeroPadding3DLayer", padding=[1, 0, 0, 0, 0, 1], dataFormat=fmt),
        layer("Cropping3D", cropping=[0, 0, 1, 1, 0, 0], dataFormat=fmt),
    ]
    x = rng.normal(size=(2, 2, 4, 6, 4))
    if fmt == "NDHWC":
        x = x.transpose(0, 2, 3, 4, 1)
    out = _runtimes_agree(_net(tmp_path, layers), x)
    spatial = (3, 4, 3)  # Same keeps (4, 6, 4); pooling (2, 3, 2); upsampling (2, 6, 2); pad, crop
    assert out.shape == ((2, 3, *spatial) if fmt == "NCDHW" else (2, *spatial, 3))


def test_frozen_mask_and_dropout_layers_are_their_inference_selves(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    w, b = rng.normal(size=(3, 2)), rng.normal(size=2)
    inner = {
        "@class": "org.deeplearning4j.nn.conf.layers.DenseLayer",
        "nin": 3,
        "nout": 2,
        "activationFn": {"@class": ACT + "Sigmoid"},
    }
    layers = [
        layer("MaskLayer"),
        layer("FrozenLayer", [Param("W", w, "f"), Param("b", b)], layer=inner),
        layer(
            "DropoutLayer",
            idropout={"@class": "org.deeplearning4j.nn.conf.dropout.Dropout", "p": 0.1},
        ),
    ]
    net = _net(tmp_path, layers)
    assert [lay.type for lay in net.layers] == [
        "MaskLayer",
        "FrozenLayer(DenseLayer)",
        "DropoutLayer",
    ]
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(net.output(x), 1 / (1 + np.exp(-(x @ w + b))), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_space_to_depth_moves_blocks_to_channels(fmt: str, tmp_path: Path) -> None:
    """Output channel (by * b + bx) * C + c holds input (c, y * b + by, x * b + bx)."""
    s2d = layer("SpaceToDepthLayer", blocks=2, dataFormat=fmt)
    x = np.random.default_rng(14).normal(size=(2, 3, 4, 6))  # NCHW
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 3, 5, 1, 2, 4)
    expected = blocks.reshape(n, 4 * c, h // 2, w // 2)
    if fmt == "NHWC":
        x, expected = x.transpose(0, 2, 3, 1), expected.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(_net(tmp_path, [s2d]).output(x), expected)


def test_autoencoder_outputs_its_encoding_and_rnn_loss_its_activation(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    w, b, vb = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=4)
    auto = layer(
        "AutoEncoder",
        [Param("W", w, "f"), Param("b", b), Param("vb", vb)],
        nin=4,
        nout=3,
        corruptionLevel=0.3,
        activationFn={"@class": ACT + "Sigmoid"},
    )
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(
        _net(tmp_path, [auto]).output(x), 1 / (1 + np.exp(-(x @ w + b))), rtol=1e-6
    )
    loss = layer("RnnLossLayer", activationFn={"@class": ACT + "Softmax"})
    seq = rng.normal(size=(2, 3, 4))  # [N, C, T]: softmax over C
    expected = np.exp(seq) / np.exp(seq).sum(axis=1, keepdims=True)
    net = _net(tmp_path, [layer("DropoutLayer"), loss])
    assert [
        d.dim_param or d.dim_value for d in net.to_onnx().graph.input[0].type.tensor_type.shape.dim
    ] == [BATCH, 0, "time"]
    np.testing.assert_allclose(net.output(seq), expected, rtol=1e-6)


def test_a_network_starting_with_an_embedding_takes_indices(tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    table, bias = rng.normal(size=(10, 3)), rng.normal(size=3)
    embedding = layer(
        "EmbeddingLayer",
        [Param("W", table, "f"), Param("b", bias)],
        nin=10,
        nout=3,
        hasBias=True,
        activationFn={"@class": ACT + "Identity"},
    )
    w = rng.normal(size=(3, 2))
    net = _net(tmp_path, [embedding, _dense_identity(3, 2, w)])
    dims = net.to_onnx().graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [BATCH, 1]
    indices = np.array([[3], [0], [9]])
    np.testing.assert_allclose(net.output(indices), (table[indices[:, 0]] + bias) @ w, rtol=1e-6)
