"""Property tests: random small DL4J feed-forward and CNN networks, written as DL4J writes them.

Every drawn network (configuration JSON + parameter vector in DL4J's storage order, zipped)
is loaded, converted, checked, and run on random inputs by onnxruntime and by
``onnx.reference``; both must agree, and the model must survive ``onnx.save``/``onnx.load``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.convert import BATCH, disabled_optimizers

from tests.convert.dl4j_writer import Layer, Param, layer, write_mln
from tests.convert.fixtures import load_mln, reference_output

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: canonical name -> (IActivation class suffix, strategy of its JSON parameters)
ACTIVATIONS: dict[str, tuple[str, st.SearchStrategy[dict[str, Any]]]] = {
    "cube": ("Cube", st.just({})),
    "elu": ("ELU", st.builds(lambda a: {"alpha": a}, st.floats(0.1, 2.0))),
    "gelu": ("GELU", st.builds(lambda p: {"precise": p}, st.booleans())),
    "hardsigmoid": ("HardSigmoid", st.just({})),
    "hardtanh": ("HardTanH", st.just({})),
    "identity": ("Identity", st.just({})),
    "lrelu": ("LReLU", st.builds(lambda a: {"alpha": a}, st.floats(0.0, 0.5))),
    "mish": ("Mish", st.just({})),
    "rationaltanh": ("RationalTanh", st.just({})),
    "rectifiedtanh": ("RectifiedTanh", st.just({})),
    "relu": ("ReLU", st.just({})),
    "relu6": ("ReLU6", st.just({})),
    "rrelu": (
        "RReLU",
        st.builds(lambda lo, d: {"l": lo, "u": lo + d}, st.floats(0, 0.3), st.floats(0, 0.3)),
    ),
    "selu": ("SELU", st.just({})),
    "sigmoid": ("Sigmoid", st.just({})),
    "softmax": ("Softmax", st.just({})),
    "softplus": ("SoftPlus", st.just({})),
    "softsign": ("SoftSign", st.just({})),
    "swish": ("Swish", st.just({})),
    "tanh": ("TanH", st.just({})),
    "thresholdedrelu": ("ThresholdedReLU", st.builds(lambda t: {"theta": t}, st.floats(0.0, 1.0))),
}


@st.composite
def activation_json(draw: st.DrawFn, names: list[str] | None = None) -> dict[str, Any]:
    """An ``activationFn`` value in the 1.0 dialect."""
    name = draw(st.sampled_from(sorted(names or ACTIVATIONS)))
    suffix, params = ACTIVATIONS[name]
    return {"@class": f"org.nd4j.linalg.activations.impl.Activation{suffix}", **draw(params)}


class Weights:
    """Deterministic random parameters for one drawn network."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def uniform(self, *shape: int, low: float = -0.7, high: float = 0.7) -> np.ndarray:
        return self.rng.uniform(low, high, shape)


def _dense(cls: str, w: Weights, n_in: int, n_out: int, act: dict[str, Any]) -> Layer:
    params = [Param("W", w.uniform(n_in, n_out), "f"), Param("b", w.uniform(n_out))]
    return layer(cls, params, nin=n_in, nout=n_out, activationFn=act, hasBias=True)


def _batch_norm(w: Weights, n: int, extra: dict[str, Any] | None = None) -> Layer:
    params = [
        Param("gamma", w.uniform(n, low=0.5, high=1.5)),
        Param("beta", w.uniform(n)),
        Param("mean", w.uniform(n)),
        Param("var", w.uniform(n, low=0.5, high=2.0)),
    ]
    return layer("BatchNormalization", params, nin=n, nout=n, eps=1e-5, **(extra or {}))


@st.composite
def ff_network(draw: st.DrawFn) -> tuple[list[Layer], int]:
    """Dense/BatchNormalization/Activation/Dropout layers, then an Output or Loss layer."""
    w = Weights(draw(st.integers(0, 2**32 - 1)))
    n_in = draw(st.integers(1, 6))
    size, layers = n_in, []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["dense", "bn", "activation", "dropout"]))
        if kind == "dense":
            n_out = draw(st.integers(1, 6))
            layers.append(_dense("DenseLayer", w, size, n_out, draw(activation_json())))
            size = n_out
        elif kind == "bn":
            layers.append(_batch_norm(w, size))
        elif kind == "activation":
            layers.append(layer("ActivationLayer", activationFn=draw(activation_json())))
        else:
            layers.append(layer("DropoutLayer", idropout={"p": 0.5}))
    if draw(st.booleans()):
        layers.append(
            _dense("OutputLayer", w, size, draw(st.integers(1, 5)), draw(activation_json()))
        )
    else:
        layers.append(layer("LossLayer", activationFn=draw(activation_json())))
    return layers, n_in


def _conv_out(size: int, ksdp: tuple[int, int, int, int], mode: str) -> int:
    k, s, d, p = ksdp
    if mode == "Same":
        return math.ceil(size / s)
    return (size + 2 * p - ((k - 1) * d + 1)) // s + 1


# One draw per layer kind and its shape arithmetic: a strategy is a long, flat recipe.
@st.composite
def cnn_network(  # noqa: PLR0912, PLR0915
    draw: st.DrawFn,
) -> tuple[list[Layer], tuple[int, int, int], str, dict[int, Any]]:
    """Conv/pooling/padding/... layers on [N, C, H, W] (or NHWC), then a CNN loss layer or a
    CnnToFeedForward preprocessor, a dense layer and an output layer."""
    w = Weights(draw(st.integers(0, 2**32 - 1)))
    fmt = draw(st.sampled_from(["NCHW", "NHWC"]))
    c, h, wd = draw(st.integers(1, 3)), draw(st.integers(4, 9)), draw(st.integers(4, 9))
    shape_in = (c, h, wd)
    layers: list[Layer] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                [
                    "conv",
                    "pool",
                    "pad",
                    "crop",
                    "up",
                    "depthwise",
                    "separable",
                    "deconv",
                    "bn",
                    "lrn",
                ]
            )
        )
        k = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        s = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))] if kind != "pool" else [1, 1]
        mode = draw(st.sampled_from(["Truncate", "Same"]))
        p = [draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1))]
        window = {
            "kernelSize": k,
            "stride": s,
            "dilation": d,
            "padding": p,
            "convolutionMode": mode,
        }
        new_hw = [
            _conv_out(n, args, mode)
            for n, args in zip((h, wd), zip(k, s, d, p, strict=True), strict=True)
        ]
        if kind in ("conv", "pool", "depthwise", "separable") and min(new_hw) < 1:
            continue
        cnn = {"cnn2dDataFormat": fmt}
        if kind == "conv":
            n_out = draw(st.integers(1, 4))
            params = [Param("b", w.uniform(n_out)), Param("W", w.uniform(n_out, c, *k))]
            act = draw(activation_json(["relu", "tanh", "identity", "sigmoid", "elu"]))
            layers.append(
                layer(
                    "ConvolutionLayer", params, nin=c, nout=n_out, activationFn=act, **window, **cnn
                )
            )
            c = n_out
        elif kind == "pool":
            pooling = draw(st.sampled_from(["MAX", "AVG", "SUM", "PNORM"]))
            extra = {"poolingType": pooling, "pnorm": draw(st.integers(1, 3))}
            extra["avgPoolIncludePadInDivisor"] = draw(st.booleans())
            layers.append(layer("SubsamplingLayer", **window, **extra, **cnn))
        elif kind == "depthwise":
            m = draw(st.integers(1, 2))
            params = [Param("b", w.uniform(c * m)), Param("W", w.uniform(*k, c, m))]
            layers.append(
                layer(
                    "DepthwiseConvolution2D",
                    params,
                    nin=c,
                    nout=c * m,
                    depthMultiplier=m,
                    activationFn=draw(activation_json(["relu", "identity"])),
                    **window,
                    **cnn,
                )
            )
            c *= m
        elif kind == "separable":
            m, n_out = draw(st.integers(1, 2)), draw(st.integers(1, 4))
            params = [
                Param("b", w.uniform(n_out)),
                Param("W", w.uniform(m, c, *k)),
                Param("pW", w.uniform(n_out, c * m, 1, 1)),
            ]
            layers.append(
                layer(
                    "SeparableConvolution2D",
                    params,
                    nin=c,
                    nout=n_out,
                    depthMultiplier=m,
                    activationFn=draw(activation_json(["relu", "identity"])),
                    **window,
                    **cnn,
                )
            )
            c = n_out
        elif kind == "deconv":
            n_out = draw(st.integers(1, 3))
            eff = [(kk - 1) * dd + 1 for kk, dd in zip(k, d, strict=True)]
            if mode == "Same":
                new_hw = [h * s[0], wd * s[1]]
            else:
                new_hw = [
                    (n - 1) * ss + e - 2 * pp
                    for n, ss, e, pp in zip((h, wd), s, eff, p, strict=True)
                ]
            if min(new_hw) < 1:
                continue
            params = [Param("b", w.uniform(n_out)), Param("W", w.uniform(c, n_out, *k))]
            layers.append(
                layer(
                    "Deconvolution2D",
                    params,
                    nin=c,
                    nout=n_out,
                    activationFn=draw(activation_json(["identity", "tanh"])),
                    **window,
                    **cnn,
                )
            )
            c = n_out
        elif kind == "pad":
            pads = [draw(st.integers(0, 2)) for _ in range(4)]
            layers.append(layer("ZeroPaddingLayer", padding=pads, dataFormat=fmt))
            new_hw = [h + pads[0] + pads[1], wd + pads[2] + pads[3]]
        elif kind == "crop":
            crops = [draw(st.integers(0, 1)) for _ in range(4)]
            new_hw = [h - crops[0] - crops[1], wd - crops[2] - crops[3]]
            if min(new_hw) < 1:
                continue
            layers.append(layer("Cropping2D", cropping=crops, dataFormat=fmt))
        elif kind == "up":
            size = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
            layers.append(layer("Upsampling2D", size=size, format=fmt))
            new_hw = [h * size[0], wd * size[1]]
        elif kind == "bn":
            layers.append(_batch_norm(w, c, {"cnn2DFormat": fmt}))
            new_hw = [h, wd]
        else:
            n = draw(st.integers(1, 5))
            layers.append(
                layer(
                    "LocalResponseNormalization",
                    n=float(n),
                    k=2.0,
                    alpha=1e-2,
                    beta=0.75,
                    dataFormat=fmt,
                )
            )
            new_hw = [h, wd]
        h, wd = new_hw
        if h * wd * c > 4000:
            break
    preprocessors: dict[int, Any] = {}
    if draw(st.booleans()):
        layers.append(
            layer(
                "CnnLossLayer",
                activationFn=draw(activation_json(["sigmoid", "softmax", "identity"])),
                format=fmt,
            )
        )
    else:
        preprocessors[len(layers)] = {
            "cls": "CnnToFeedForwardPreProcessor",
            "fields": {"inputHeight": h, "inputWidth": wd, "numChannels": c, "format": fmt},
        }
        layers.append(_dense("DenseLayer", w, h * wd * c, 3, draw(activation_json(["tanh"]))))
        layers.append(_dense("OutputLayer", w, 3, 2, draw(activation_json(["softmax"]))))
    return layers, shape_in, fmt, preprocessors


def _roundtrip_and_compare(model: onnx.ModelProto, x: np.ndarray, tmp: Path, tol: float) -> None:
    onnx.checker.check_model(model, full_check=True)
    path = tmp / "model.onnx"
    onnx.save(model, path)
    loaded = onnx.load(path)
    assert loaded.SerializeToString() == model.SerializeToString()
    session = ort.InferenceSession(
        loaded.SerializeToString(),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=disabled_optimizers(loaded),
    )
    (fast,) = session.run(None, {"input": x})
    slow = reference_output(loaded, {"input": x})
    assert fast.dtype == slow.dtype == x.dtype
    np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol)


@SETTINGS
@given(net=ff_network(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_random_ff_network_onnxruntime_matches_reference(
    net: tuple[list[Layer], int], dtype: type, seed: int, tmp_path: Path
) -> None:
    layers, n_in = net
    path = write_mln(tmp_path / f"ff_{seed}.zip", layers, dtype)
    loaded = load_mln(path)
    model = loaded.to_onnx()
    x: np.ndarray = np.random.default_rng(seed).normal(size=(3, n_in)).astype(dtype)
    _roundtrip_and_compare(model, x, tmp_path, 1e-4 if dtype == np.float32 else 1e-6)
    np.testing.assert_allclose(
        loaded.output(x),
        reference_output(model, {"input": x}),
        rtol=1e-4,
        atol=1e-4,
    )


@SETTINGS
@given(net=cnn_network(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_random_cnn_network_onnxruntime_matches_reference(
    net: tuple[list[Layer], tuple[int, int, int], str, dict[int, Any]],
    dtype: type,
    seed: int,
    tmp_path: Path,
) -> None:
    layers, (c, h, w), fmt, pre = net
    path = write_mln(tmp_path / f"cnn_{seed}.zip", layers, dtype, pre)
    model = load_mln(path).to_onnx()
    shape = (2, h, w, c) if fmt == "NHWC" else (2, c, h, w)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == BATCH
    channels = dims[3 if fmt == "NHWC" else 1]
    assert channels.dim_value == c or not channels.HasField("dim_value")  # unknown if undeclared
    x: np.ndarray = np.random.default_rng(seed).normal(size=shape).astype(dtype)
    _roundtrip_and_compare(model, x, tmp_path, 1e-4)


@pytest.mark.parametrize(
    ("dtype", "elem"),
    [
        (np.float16, onnx.TensorProto.FLOAT16),
        (np.float32, onnx.TensorProto.FLOAT),
        (np.float64, onnx.TensorProto.DOUBLE),
    ],
)
def test_file_dtype_is_the_model_dtype(dtype: type, elem: int, tmp_path: Path) -> None:
    """Initializers, input and output in the file's dtype; batch dynamic; model checked."""
    w = Weights(1)
    layers = [
        layer(
            "ConvolutionLayer",
            [Param("b", w.uniform(2)), Param("W", w.uniform(2, 1, 3, 3))],
            nin=1,
            nout=2,
            kernelSize=[3, 3],
            stride=[1, 1],
            padding=[0, 0],
            activationFn={"@class": "org.nd4j.linalg.activations.impl.ActivationReLU"},
        ),
        _batch_norm(w, 2),
        layer("SubsamplingLayer", kernelSize=[2, 2], stride=[2, 2], poolingType="AVG"),
        layer("Upsampling2D", size=[2, 2]),
        _dense(
            "DenseLayer",
            w,
            2 * 8 * 8,
            3,
            {"@class": "org.nd4j.linalg.activations.impl.ActivationTanH"},
        ),
    ]
    pre = {
        4: {
            "cls": "CnnToFeedForwardPreProcessor",
            "fields": {"inputHeight": 8, "inputWidth": 8, "numChannels": 2},
        }
    }
    net = load_mln(write_mln(tmp_path / "net.zip", layers, dtype, pre))
    model = net.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    floats = {t.data_type for t in model.graph.initializer} - {onnx.TensorProto.INT64}
    assert floats == {elem}
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == elem
    assert inp.type.tensor_type.shape.dim[0].dim_param == BATCH
    x: np.ndarray = np.random.default_rng(0).uniform(size=(5, 1, 10, 10)).astype(dtype)
    y = net.output(x)
    assert y.dtype == dtype
    assert y.shape == (5, 3)
    ref = reference_output(model, {"input": x})
    tol = 5e-3 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(y.astype(np.float64), ref.astype(np.float64), rtol=tol, atol=tol)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(net=cnn_network(), seed=st.integers(0, 99))
def test_random_cnn_network_in_half_precision(
    net: tuple[list[Layer], tuple[int, int, int], str, dict[int, Any]], seed: int, tmp_path: Path
) -> None:
    """HALF models compute in float16 in onnxruntime (every op has a float16 kernel) and agree
    with onnx.reference to float16's precision compounded over a few layers."""
    layers, (c, h, w), fmt, pre = net
    model = load_mln(write_mln(tmp_path / f"half_{seed}.zip", layers, np.float16, pre)).to_onnx()
    shape = (2, h, w, c) if fmt == "NHWC" else (2, c, h, w)
    x: np.ndarray = np.random.default_rng(seed).normal(size=shape).astype(np.float16)
    session = ort.InferenceSession(
        model.SerializeToString(),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=disabled_optimizers(model),
    )
    (fast,) = session.run(None, {"input": x})
    assert fast.dtype == np.float16
    slow = reference_output(model, {"input": x})
    np.testing.assert_allclose(
        fast.astype(np.float64), slow.astype(np.float64), rtol=2e-2, atol=2e-2
    )
