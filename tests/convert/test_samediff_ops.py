"""SameDiff op converters, one small FlatGraph per case: libnd4j's semantics (written here in
numpy from the op definitions) vs onnxruntime, and onnxruntime vs onnx.reference."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.errors import LoadError
from omnihub.loaders.samediff import read_flatgraph
from onnx.reference import ReferenceEvaluator

from tests.loaders.helpers import Node, Var, build_flatgraph

Array = npt.NDArray[Any]
RNG = np.random.default_rng(5)
PLACEHOLDER, VARIABLE, ARRAY = 3, 0, 2


def rand(*shape: int, positive: bool = False) -> Array:
    x = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(x) + 0.1 if positive else x


def run_op(
    tmp_path: Path,
    op_name: str,
    feeds: Sequence[Array],
    weights: Sequence[Array] = (),
    *,
    n_out: int = 1,
    dynamic_batch: bool = False,
    reference: bool = True,
    **args: Any,
) -> list[Array]:
    """One op on placeholders ``x0..`` (fed) and weights ``w0..``; returns its outputs computed
    by onnxruntime, after checking them against onnx.reference."""
    variables, inputs = [], []
    node = 1
    for i, value in enumerate(feeds):
        shape = tuple(-1 if dynamic_batch and d == 0 else s for d, s in enumerate(value.shape))
        variables.append(Var(f"x{i}", PLACEHOLDER, node, shape=shape))
        inputs.append((node, 0))
        node += 1
    for i, value in enumerate(weights):
        code = 10 if value.dtype == np.int64 else 9 if value.dtype == np.int32 else 5
        variables.append(Var(f"w{i}", VARIABLE, node, array=value, dtype_code=code))
        inputs.append((node, 0))
        node += 1
    outs = tuple(f"y{k}" for k in range(n_out))
    variables += [Var(o, ARRAY, node, index=k) for k, o in enumerate(outs)]
    op = Node(node, op_name, op_name, tuple(inputs), outs, **args)
    path = tmp_path / f"{op_name}.fb"
    path.write_bytes(
        build_flatgraph(variables, [op], placeholders=[f"x{i}" for i in range(len(feeds))])
    )
    model = read_flatgraph(path).to_onnx(list(outs))
    named = {f"x{i}": v for i, v in enumerate(feeds)}
    ours = ort.InferenceSession(model.SerializeToString()).run(None, named)
    if reference:
        ref = ReferenceEvaluator(model).run(None, named)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    return list(ours)


def close(actual: Array, expected: Array) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def sigmoid(x: Array) -> Array:
    return 1 / (1 + np.exp(-x))


def softplus(x: Array) -> Array:
    return np.log1p(np.exp(x))


UNARY: dict[str, Callable[[Array], Array]] = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "exp": np.exp,
    "abs": np.abs,
    "neg": np.negative,
    "softplus": softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "relu6": lambda x: np.clip(x, 0, 6),
    "hardtanh": lambda x: np.clip(x, -1, 1),
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1),
    "swish": lambda x: x * sigmoid(x),
    "gelu": lambda x: x * sigmoid(1.702 * x),
    "mish": lambda x: x * np.tanh(softplus(x)),
    "square": np.square,
    "identity": lambda x: x,
    "dropout_inverted": lambda x: x,
    "floor": np.floor,
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op: str, tmp_path: Path) -> None:
    x = rand(3, 4) * 4
    (y,) = run_op(tmp_path, op, [x])
    close(y, UNARY[op](x))


def test_positive_unary(tmp_path: Path) -> None:
    x = rand(2, 5, positive=True)
    expected: dict[str, Array] = {"log": np.log(x), "sqrt": np.sqrt(x), "rsqrt": 1 / np.sqrt(x)}
    for op, want in expected.items():
        (y,) = run_op(tmp_path, op, [x])
        close(y, want)


BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "rsub": lambda x, y: y - x,
    "rdiv": lambda x, y: y / x,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "squaredsubtract": lambda x, y: (x - y) ** 2,
    "pow": np.power,
}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1))])
def test_binary_broadcasts(op: str, shapes: tuple[tuple[int, ...], ...], tmp_path: Path) -> None:
    x, w = rand(*shapes[0], positive=True), rand(*shapes[1], positive=True)
    (y,) = run_op(tmp_path, op, [x], [w])
    close(y, BINARY[op](x, w))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_dimension(op: str, axis: int, tmp_path: Path) -> None:
    x = rand(3, 4, 5)
    (y,) = run_op(tmp_path, op, [x], int_args=(axis,))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    close(y, expected if op == "softmax" else np.log(expected))


@pytest.mark.parametrize(("ta", "tb", "tz"), list(itertools.product((0, 1), repeat=3)))
def test_mmul_transposes(ta: int, tb: int, tz: int, tmp_path: Path) -> None:
    a, b = rand(3, 4), rand(4, 5)
    a_in = a.T.copy() if ta else a
    b_in = b.T.copy() if tb else b
    (y,) = run_op(tmp_path, "mmul", [a_in], [b_in], int_args=(ta, tb, tz), float_args=(2.0,))
    expected = 2.0 * a @ b
    close(y, expected.T if tz else expected)


def test_batched_matmul(tmp_path: Path) -> None:
    a, b = rand(2, 3, 4), rand(2, 5, 4)
    (y,) = run_op(tmp_path, "matmul", [a], [b], int_args=(0, 1, 0))
    close(y, a @ b.transpose(0, 2, 1))


def test_xw_plus_b_and_biasadd(tmp_path: Path) -> None:
    x, w, b = rand(3, 4), rand(4, 2), rand(2)
    (y,) = run_op(tmp_path, "xw_plus_b", [x], [w, b])
    close(y, x @ w + b)
    (y,) = run_op(tmp_path, "xw_plus_b", [x], [w.T.copy(), b], int_args=(1,))
    close(y, x @ w + b)
    img, bias = rand(2, 3, 4, 5), rand(3)
    (y,) = run_op(tmp_path, "biasadd", [img], [bias], bool_args=(True,))
    close(y, img + bias[None, :, None, None])
    (y,) = run_op(tmp_path, "biasadd", [img], [rand(5)], bool_args=(False,))
    assert y.shape == img.shape


@pytest.mark.parametrize("order", ["c", "f", None])
def test_reshape_orders(order: str | None, tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    args = ((-ord(order),) if order else ()) + (4, -1)
    (y,) = run_op(tmp_path, "reshape", [x], int_args=args)
    close(y, x.reshape((4, -1), order="F" if order == "f" else "C"))


def test_reshape_shape_as_input(tmp_path: Path) -> None:
    x = rand(2, 6)
    (y,) = run_op(tmp_path, "reshape", [x], [np.array([3, 4], dtype=np.int64)])
    close(y, x.reshape(3, 4))


def test_layout_ops(tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    (y,) = run_op(tmp_path, "permute", [x], int_args=(2, 0, 1))
    close(y, x.transpose(2, 0, 1))
    (y,) = run_op(tmp_path, "permute", [x], [np.array([1, 2, 0], dtype=np.int32)])
    close(y, x.transpose(1, 2, 0))
    (y,) = run_op(tmp_path, "transpose", [x])
    close(y, x.T)
    (y,) = run_op(tmp_path, "concat", [x, x * 2], int_args=(-1,))
    close(y, np.concatenate([x, x * 2], axis=-1))
    (y,) = run_op(tmp_path, "stack", [x, x * 2], int_args=(1,))
    close(y, np.stack([x, x * 2], axis=1))
    (y,) = run_op(tmp_path, "gather", [x], int_args=(1, 2, 0))
    close(y, x[:, [2, 0]])
    (y,) = run_op(tmp_path, "gather", [x], [np.array([3, 1], dtype=np.int32)], int_args=(2,))
    close(y, x[:, :, [3, 1]])
    (y,) = run_op(tmp_path, "expand_dims", [x], int_args=(1,))
    close(y, x[:, None])
    (y,) = run_op(tmp_path, "squeeze", [x[:, :1]], int_args=(1,))
    close(y, x[:, 0])
    (y,) = run_op(tmp_path, "flatten_2d", [x], int_args=(1,))
    close(y, x.reshape(2, -1))
    (y,) = run_op(tmp_path, "shape_of", [x])
    assert list(y) == [2, 3, 4]


@pytest.mark.parametrize(("mode", "np_mode"), [(0, "constant"), (1, "reflect")])
def test_pad(mode: int, np_mode: str, tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    pads = np.array([[0, 0], [1, 2], [2, 1]], dtype=np.int32)
    (y,) = run_op(tmp_path, "pad", [x], [pads], int_args=(mode,))
    close(y, np.pad(x, pads.tolist(), mode=np_mode))  # type: ignore[call-overload]


def test_symmetric_pad_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"SYMMETRIC"):
        run_op(tmp_path, "pad", [rand(2, 3)], [np.ones((2, 2), np.int32)], int_args=(2,))


REDUCE: dict[str, Callable[..., Array]] = {
    "reduce_mean": np.mean,
    "reduce_sum": np.sum,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_norm1": lambda x, axis, keepdims: np.abs(x).sum(axis=axis, keepdims=keepdims),
    "reduce_norm2": lambda x, axis, keepdims: np.sqrt((x * x).sum(axis=axis, keepdims=keepdims)),
    "reduce_sqnorm": lambda x, axis, keepdims: (x * x).sum(axis=axis, keepdims=keepdims),
}


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("dims", [(1,), (0, 2), ()])
@pytest.mark.parametrize("keep", [False, True])
def test_reductions(op: str, dims: tuple[int, ...], keep: bool, tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    (y,) = run_op(tmp_path, op, [x], dimensions=dims, bool_args=(keep, True))
    close(y, np.asarray(REDUCE[op](x, axis=dims or None, keepdims=keep), dtype=np.float32))


def test_argmax(tmp_path: Path) -> None:
    x = rand(3, 5)
    (y,) = run_op(tmp_path, "argmax", [x], dimensions=(1,))
    assert list(y) == list(x.argmax(axis=1))
    (y,) = run_op(tmp_path, "argmin", [x], dimensions=(0,), bool_args=(True,))
    assert y.tolist() == [list(x.argmin(axis=0))]


# -- convolution and pooling, NCHW numpy references ----------------------------------------------


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
    return total // 2, total - total // 2


def padded(
    x: Array,
    *,
    kernel: Sequence[int],
    strides: Sequence[int],
    dil: Sequence[int],
    pads: Sequence[int],
    same: bool,
    fill: float,
) -> Array:
    widths = [(0, 0), (0, 0)]
    for axis, (k, s, d, p) in enumerate(zip(kernel, strides, dil, pads, strict=True)):
        widths.append(same_pads(x.shape[axis + 2], k, s, d) if same else (p, p))
    return np.pad(x, widths, constant_values=fill)


def windows(
    xp: Array, *, kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int]
) -> Array:
    """[N, C, oH, oW, kH, kW] views of an NCHW array."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dil
    oh = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    taps = [
        [
            xp[
                :,
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
            ]
            for j in range(kw)
        ]
        for i in range(kh)
    ]
    return np.stack([np.stack(row, axis=-1) for row in taps], axis=-2)


@pytest.mark.parametrize("nhwc", [False, True])
@pytest.mark.parametrize("w_format", [0, 1, 2])
@pytest.mark.parametrize("case", [(1, 0, 1, 0), (2, 1, 1, 0), (2, 0, 2, 1), (1, 0, 1, 1)])
def test_conv2d(nhwc: bool, w_format: int, case: tuple[int, int, int, int], tmp_path: Path) -> None:
    stride, pad, dil, same = case  # libnd4j iArgs: stride, padding, dilation, isSameMode
    x, w = rand(2, 3, 7, 6), rand(3, 2, 3, 4)  # NCHW input, [kH, kW, iC, oC] weights
    b = rand(4)
    window = {"kernel": (3, 2), "strides": (stride,) * 2, "dil": (dil,) * 2}
    xp = padded(x, **window, pads=(pad,) * 2, same=bool(same), fill=0.0)
    expected = np.einsum("nchwij,ijco->nohw", windows(xp, **window), w) + b[None, :, None, None]
    stored = {0: w, 1: w.transpose(3, 2, 0, 1), 2: w.transpose(3, 0, 1, 2)}[w_format].copy()
    feed = x.transpose(0, 2, 3, 1).copy() if nhwc else x
    args = (3, 2, stride, stride, pad, pad, dil, dil, same, int(nhwc), w_format)
    (y,) = run_op(tmp_path, "conv2d", [feed], [stored, b], int_args=args, dynamic_batch=True)
    close(y.transpose(0, 3, 1, 2) if nhwc else y, expected)


@pytest.mark.parametrize("nhwc", [False, True])
@pytest.mark.parametrize("case", [(2, 0, 0), (1, 1, 0), (2, 0, 1)])
@pytest.mark.parametrize("divisor", [0, 1])
def test_pooling2d(nhwc: bool, case: tuple[int, int, int], divisor: int, tmp_path: Path) -> None:
    stride, pad, same = case
    x = rand(2, 3, 7, 6)
    window = {"kernel": (3, 2), "strides": (stride, stride), "dil": (1, 1)}

    def padded_input(v: Array, fill: float) -> Array:
        return padded(v, **window, pads=(pad, pad), same=bool(same), fill=fill)

    feed = x.transpose(0, 2, 3, 1).copy() if nhwc else x
    args = (3, 2, stride, stride, pad, pad, 1, 1, same, divisor, int(nhwc))

    def back(v: Array) -> Array:
        return v.transpose(0, 3, 1, 2) if nhwc else v

    (y,) = run_op(tmp_path, "maxpool2d", [feed], int_args=args)
    close(back(y), windows(padded_input(x, -np.inf), **window).max(axis=(-2, -1)))
    (y,) = run_op(tmp_path, "avgpool2d", [feed], int_args=args)
    total = windows(padded_input(x, 0.0), **window).sum(axis=(-2, -1))
    count = windows(padded_input(np.ones_like(x), 0.0), **window).sum(axis=(-2, -1))
    close(back(y), total / (6.0 if divisor == 1 else count))


@pytest.mark.parametrize("axis", [1, 3])
def test_batchnorm(axis: int, tmp_path: Path) -> None:
    x = rand(2, 3, 4, 5)
    c = x.shape[axis]
    mean, var, gamma, beta = rand(c), rand(c, positive=True), rand(c), rand(c)
    (y,) = run_op(
        tmp_path,
        "batchnorm",
        [x],
        [mean, var, gamma, beta],
        int_args=(1, 1, axis),
        float_args=(1e-3,),
    )
    shape = [1] * 4
    shape[axis] = c
    r = [a.reshape(shape) for a in (mean, var, gamma, beta)]
    close(y, (x - r[0]) / np.sqrt(r[1] + 1e-3) * r[2] + r[3])


# -- unsupported ops ------------------------------------------------------------------------------


def test_every_unsupported_op_is_listed_at_once(tmp_path: Path) -> None:
    variables = [
        Var("x", PLACEHOLDER, 1, shape=(-1, 3)),
        Var("a", ARRAY, 2),
        Var("b", ARRAY, 3),
        Var("c", ARRAY, 4),
    ]
    nodes = [
        Node(2, "first", "frobnicate", ((1, 0),), ("a",)),
        Node(3, "fine", "relu", ((2, 0),), ("b",)),
        Node(4, "second", "twiddle", ((3, 0),), ("c",)),
    ]
    path = tmp_path / "bad.fb"
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    graph = read_flatgraph(path)
    with pytest.raises(LoadError) as info:
        graph.to_onnx()
    message = str(info.value)
    assert str(path) in message
    assert message.index("frobnicate") < message.index("twiddle")
    assert "1 more unsupported" in message
    assert "relu" not in message


# -- property: random chains of element-wise and shape ops keep ORT == reference == numpy ------

CHAIN_OPS = ["relu", "tanh", "sigmoid", "softplus", "swish", "add", "mul", "softmax", "reduce_mean"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(st.sampled_from(CHAIN_OPS), min_size=1, max_size=6),
    batch=st.integers(1, 5),
    width=st.integers(1, 6),
)
def test_random_chains(ops: list[str], batch: int, width: int, tmp_path: Path) -> None:
    variables = [Var("x", PLACEHOLDER, 1, shape=(-1, width))]
    nodes = []
    expected = x = rand(batch, width)
    current, node = (1, 0), 2
    for k, op in enumerate(ops):
        inputs: tuple[tuple[int, int], ...] = (current,)
        kwargs: dict[str, Any] = {}
        if op in ("add", "mul"):
            w = rand(width)
            variables.append(Var(f"w{k}", VARIABLE, node, array=w))
            inputs = (current, (node, 0))
            node += 1
            expected = expected + w if op == "add" else expected * w
        elif op == "softmax":
            kwargs["int_args"] = (-1,)
            e = np.exp(expected - expected.max(axis=-1, keepdims=True))
            expected = e / e.sum(axis=-1, keepdims=True)
        elif op == "reduce_mean":
            kwargs.update(dimensions=(1,), bool_args=(True, True))
            expected = expected.mean(axis=1, keepdims=True)
            width = 1
        else:
            expected = UNARY[op](expected)
        variables.append(Var(f"v{k}", ARRAY, node))
        nodes.append(Node(node, f"op{k}", op, inputs, (f"v{k}",), **kwargs))
        current, node = (node, 0), node + 1
    path = tmp_path / "chain.fb"
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    graph = read_flatgraph(path)
    (result,) = graph.output({"x": x}).values()
    close(result, expected.astype(np.float32))
    model = graph.to_onnx()
    (ref,) = ReferenceEvaluator(model).run(None, {"x": x})
    close(result, np.asarray(ref))


@pytest.mark.parametrize("nwc", [False, True])
@pytest.mark.parametrize(("mode", "dil"), [(0, 1), (1, 2), (2, 1), (2, 2)])
def test_conv1d_modes(nwc: bool, mode: int, dil: int, tmp_path: Path) -> None:
    x, w, b = rand(2, 3, 9), rand(3, 3, 4), rand(4)  # NCW input, [kW, iC, oC] weights
    reach = 2 * dil
    widths = {0: (0, 0), 1: same_pads(9, 3, 1, dil), 2: (reach, 0)}[mode]
    xp = np.pad(x, [(0, 0), (0, 0), widths])[:, :, None]
    win = windows(xp, kernel=(1, 3), strides=(1, 1), dil=(1, dil))[:, :, 0, :, 0]
    expected = np.einsum("ncwk,kco->now", win, w) + b[None, :, None]
    feed = x.transpose(0, 2, 1).copy() if nwc else x
    (y,) = run_op(tmp_path, "conv1d", [feed], [w, b], int_args=(3, 1, 0, dil, mode, int(nwc), 0))
    close(y.transpose(0, 2, 1) if nwc else y, expected)


@pytest.mark.parametrize("w_format", [0, 1, 2])
def test_depthwise_conv2d(w_format: int, tmp_path: Path) -> None:
    x, w = rand(2, 3, 6, 5), rand(3, 2, 3, 2)  # [kH, kW, iC, mC]
    win = windows(x, kernel=(3, 2), strides=(1, 1), dil=(1, 1))
    expected = np.einsum("nchwij,ijcm->ncmhw", win, w).reshape(2, 6, 4, 4)
    stored = {0: w, 1: w.transpose(3, 2, 0, 1), 2: w.transpose(3, 0, 1, 2)}[w_format].copy()
    args = (3, 2, 1, 1, 0, 0, 1, 1, 0, 0, w_format)
    (y,) = run_op(tmp_path, "depthwise_conv2d", [x], [stored], int_args=args)
    close(y, expected)


@pytest.mark.parametrize("nchw", [0, 1])
def test_upsampling2d(nchw: int, tmp_path: Path) -> None:
    x = rand(2, 3, 4, 5)
    (y,) = run_op(tmp_path, "upsampling2d", [x], int_args=(2, 3, nchw))
    axes = (2, 3) if nchw else (1, 2)
    close(y, x.repeat(2, axis=axes[0]).repeat(3, axis=axes[1]))


def test_slicing_ops(tmp_path: Path) -> None:
    x = rand(4, 5, 6)
    (y,) = run_op(tmp_path, "slice", [x], int_args=(1, 0, 2, 2, -1, 3))
    close(y, x[1:3, 0:, 2:5])
    i64 = np.int64
    (y,) = run_op(tmp_path, "slice", [x], [np.array([0, 1, 1], i64), np.array([2, 3, -1], i64)])
    close(y, x[0:2, 1:4, 1:])
    # masks: begin of axis 0, end of axis 2; shrink axis 1
    args = (0b001, 0, 0b100, 0, 0b010, 1, 2, 1, 3, 3, 4, 1, 1, 2)
    (y,) = run_op(tmp_path, "strided_slice", [x], int_args=args)
    close(y, x[:3, 2, 1::2])
    # a negative stride with both masks runs over the whole axis backwards
    args = (0b001, 0, 0b001, 0, 0, 0, 1, 2, 0, 4, 6, -1, 1, 2)
    (y,) = run_op(tmp_path, "strided_slice", [x], int_args=args)
    close(y, x[::-1, 1:4, 2:6:2])
    (y,) = run_op(tmp_path, "tile", [x], int_args=(1, 2, 1))
    close(y, np.tile(x, (1, 2, 1)))


def test_small_elementwise_ops(tmp_path: Path) -> None:
    x = rand(3, 4)
    (y,) = run_op(tmp_path, "clipbyvalue", [x], float_args=(-0.5, 0.25))
    close(y, np.clip(x, -0.5, 0.25))
    stacked = np.stack([x, 2 * x, -x])
    merged = {"mergeadd": stacked.sum(0), "mergemax": stacked.max(0), "mergeavg": stacked.mean(0)}
    for op, want in merged.items():
        (y,) = run_op(tmp_path, op, [x, 2 * x, -x])
        close(y, want)
    a = np.abs(x)
    for op, want in (("log1p", np.log1p(a)), ("expm1", np.expm1(a)), ("cube", a**3)):
        (y,) = run_op(tmp_path, op, [a])
        close(y, want)


@pytest.mark.parametrize(("dtype", "code", "tol"), [(np.float64, 6, 1e-6), (np.float16, 3, 3e-3)])
@pytest.mark.parametrize("op", ["mmul", "conv2d", "lstmLayer"])
def test_weights_keep_their_dtype(
    dtype: Any, code: int, tol: float, op: str, tmp_path: Path
) -> None:
    """DOUBLE and HALF graphs: initializers, inputs and outputs keep the file's type; the
    result matches a float64 numpy computation from the same (rounded) weights (DOUBLE to
    1e-6: onnxruntime has no DOUBLE Conv, which runs in FLOAT; HALF to 3e-3, ~3 half ulps)."""
    w = {
        "mmul": rand(3, 4),
        "conv2d": rand(2, 2, 3, 4),
        "lstmLayer": rand(3, 8),
    }[op].astype(dtype)
    x = {"mmul": rand(2, 3), "conv2d": rand(2, 3, 4, 4), "lstmLayer": rand(2, 2, 3)}[op].astype(
        dtype
    )
    variables = [Var("x", PLACEHOLDER, 1, shape=(-1, *x.shape[1:]), dtype_code=code)]
    variables.append(Var("w", VARIABLE, 2, array=w, dtype_code=code))
    inputs: tuple[tuple[int, int], ...] = ((1, 0), (2, 0))
    kwargs: dict[str, Any] = {}
    wd, xd = w.astype(np.float64), x.astype(np.float64)
    if op == "mmul":
        expected = xd @ wd
    elif op == "conv2d":
        kwargs["int_args"] = (2, 2, 1, 1, 0, 0, 1, 1, 0, 0, 0)
        win = windows(xd, kernel=(2, 2), strides=(1, 1), dil=(1, 1))
        expected = np.einsum("nchwij,ijco->nohw", win, wd)
    else:  # lstmLayer [batch, time, nIn], nOut 2, zero states, no bias
        wr = rand(2, 8).astype(dtype)
        variables.append(Var("wr", VARIABLE, 3, array=wr, dtype_code=code))
        inputs += ((3, 0),)
        kwargs.update(int_args=(1, 0, 2, 0, 0), bool_args=(False,) * 5 + (True, False, False))
        h = c = np.zeros((2, 2))
        steps = []
        for t in range(2):
            z = xd[:, t] @ wd + h @ wr.astype(np.float64)
            gi, gf, gg, go = (z[:, k * 2 : k * 2 + 2] for k in range(4))
            c = sigmoid(gf) * c + sigmoid(gi) * np.tanh(gg)
            h = sigmoid(go) * np.tanh(c)
            steps.append(h)
        expected = np.stack(steps, axis=1)
    node_id = len(variables) + 1
    variables.append(Var("y", ARRAY, node_id, dtype_code=code))
    nodes = [Node(node_id, "y", op, inputs, ("y",), **kwargs)]
    path = tmp_path / "typed.fb"
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    graph = read_flatgraph(path)
    model = graph.to_onnx()
    elem = {np.float64: 11, np.float16: 10}[dtype]
    assert {t.data_type for t in model.graph.initializer if t.name in ("w", "wr")} == {elem}
    assert model.graph.input[0].type.tensor_type.elem_type == elem
    y = graph.output({"x": x})["y"]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=tol, atol=tol)


def test_ops_listed_out_of_order_and_cycles(tmp_path: Path) -> None:
    variables = [Var("x", PLACEHOLDER, 1, shape=(-1, 3)), Var("a", ARRAY, 2), Var("b", ARRAY, 3)]
    # the consumer is listed before its producer: still converted in dependency order
    nodes = [
        Node(3, "second", "tanh", ((2, 0),), ("b",)),
        Node(2, "first", "relu", ((1, 0),), ("a",)),
    ]
    path = tmp_path / "order.fb"
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    x = rand(2, 3)
    close(read_flatgraph(path).output({"x": x}, "b")["b"], np.tanh(np.maximum(x, 0)))
    cyclic = [
        Node(2, "first", "relu", ((3, 0),), ("a",)),
        Node(3, "second", "tanh", ((2, 0),), ("b",)),
    ]
    path.write_bytes(build_flatgraph(variables, cyclic, placeholders=["x"]))
    with pytest.raises(LoadError, match=r"cycle among ops \['first', 'second'\]"):
        read_flatgraph(path).to_onnx("b")


def test_lrn_runs_along_the_last_axis(tmp_path: Path) -> None:
    x = rand(2, 3, 4, 7)
    depth, bias, alpha, beta = 2, 1.5, 0.3, 0.75
    # onnx.reference's LRN loops over the batch instead of the channels (onnx 1.23): numpy only
    (y,) = run_op(
        tmp_path,
        "lrn",
        [x],
        reference=False,
        int_args=(depth,),
        float_args=(bias, alpha, beta),
    )
    squares = np.pad(x * x, [(0, 0)] * 3 + [(depth, depth)])
    window = sum(squares[..., k : k + 7] for k in range(2 * depth + 1))
    close(y, x / (bias + alpha * window) ** beta)


def test_comparisons_and_select(tmp_path: Path) -> None:
    x, w = rand(3, 4), rand(4)
    compare = {
        "equals": np.equal,
        "not_equals": np.not_equal,
        "greater": np.greater,
        "greater_equal": np.greater_equal,
        "less": np.less,
        "less_equal": np.less_equal,
    }
    for op, fn in compare.items():
        (y,) = run_op(tmp_path, op, [x, np.where(x > 0, x, 0).astype(np.float32)])
        assert y.dtype == np.bool_
        np.testing.assert_array_equal(y, fn(x, np.where(x > 0, x, 0)))
    (y,) = run_op(tmp_path, "select", [x, 2 * x, x * 0 + w])
    close(y, np.where(x != 0, 2 * x, x * 0 + w))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=st.fixed_dictionaries(
        {
            "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
            "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
            "dil": st.tuples(st.integers(1, 2), st.integers(1, 2)),
            "pad": st.tuples(st.integers(0, 1), st.integers(0, 1)),
            "same": st.booleans(),
            "nhwc": st.booleans(),
            "size": st.tuples(st.integers(5, 8), st.integers(5, 8)),
            "batch": st.integers(1, 3),
        }
    )
)
def test_random_conv2d_matches_numpy(case: dict[str, Any], tmp_path: Path) -> None:
    kernel, stride, dil, pad = case["kernel"], case["stride"], case["dil"], case["pad"]
    same, nhwc, size, batch = case["same"], case["nhwc"], case["size"], case["batch"]
    x, w, b = rand(batch, 2, *size), rand(*kernel, 2, 3), rand(3)
    window = {"kernel": kernel, "strides": stride, "dil": dil}
    xp = padded(x, **window, pads=pad, same=same, fill=0.0)
    expected = np.einsum("nchwij,ijco->nohw", windows(xp, **window), w) + b[None, :, None, None]
    feed = x.transpose(0, 2, 3, 1).copy() if nhwc else x
    args = (*kernel, *stride, *pad, *dil, int(same), int(nhwc), 0)
    (y,) = run_op(tmp_path, "conv2d", [feed], [w, b], int_args=args, dynamic_batch=True)
    close(y.transpose(0, 3, 1, 2) if nhwc else y, expected)


def test_legacy_softmax_dimension(tmp_path: Path) -> None:
    x = rand(3, 4)
    (y,) = run_op(tmp_path, "softmax", [x], dimensions=(0,))
    e = np.exp(x - x.max(axis=0))
    close(y, e / e.sum(axis=0))


def test_constants_and_what_cannot_be_fed(tmp_path: Path) -> None:
    shape = np.array([4, 3], dtype=np.int64)
    variables = [
        Var("x", PLACEHOLDER, 1, shape=(-1, 6)),
        Var("shape", 1, 2, array=shape, dtype_code=10),  # CONSTANT
        Var("y", ARRAY, 3),
    ]
    nodes = [Node(3, "y", "reshape", ((1, 0), (2, 0)), ("y",))]
    path = tmp_path / "const.fb"
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    graph = read_flatgraph(path)
    model = graph.to_onnx()
    assert [t.name for t in model.graph.initializer if t.name == "shape"] == ["shape"]
    x = rand(2, 6)
    close(graph.output({"x": x})["y"], x.reshape(4, 3))
    # an unshaped placeholder and an array nothing computes are both reported, at once
    variables = [Var("x", PLACEHOLDER, 1), Var("ghost", ARRAY, 2), Var("y", ARRAY, 3)]
    nodes = [Node(3, "y", "add", ((1, 0), (2, 0)), ("y",))]
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    with pytest.raises(LoadError, match=r"placeholder 'x'.*no declared shape.*'ghost'.*no stored"):
        read_flatgraph(path).to_onnx()


def test_unsupported_options_in_independent_branches_are_all_reported(tmp_path: Path) -> None:
    variables = [
        Var("x", PLACEHOLDER, 1, shape=(-1, 3)),
        Var("pads", VARIABLE, 2, array=np.ones((2, 2), np.int32), dtype_code=9),
        Var("a", ARRAY, 3),
        Var("b", ARRAY, 4),
    ]
    nodes = [  # two SYMMETRIC pads, neither feeding the other
        Node(3, "left", "pad", ((1, 0), (2, 0)), ("a",), int_args=(2,)),
        Node(4, "right", "pad", ((1, 0), (2, 0)), ("b",), int_args=(2,)),
    ]
    path = tmp_path / "branches.fb"
    path.write_bytes(build_flatgraph(variables, nodes, placeholders=["x"]))
    with pytest.raises(LoadError, match=r"'left'.*SYMMETRIC.*1 more.*'right'.*SYMMETRIC"):
        read_flatgraph(path).to_onnx(["a", "b"])


def test_cast_by_darg_or_iarg(tmp_path: Path) -> None:
    x = rand(3, 4) * 10
    (y,) = run_op(tmp_path, "cast", [x], dtype_args=(9,))  # INT32
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, x.astype(np.int32))
    (y,) = run_op(tmp_path, "cast", [x], int_args=(6,))  # DOUBLE
    assert y.dtype == np.float64
    with pytest.raises(LoadError, match=r"cast to data type UTF8"):
        run_op(tmp_path, "cast", [x], dtype_args=(50,))


def test_split_and_unstack(tmp_path: Path) -> None:
    x = rand(4, 6, 2)
    ys = run_op(tmp_path, "split", [x], n_out=3, int_args=(3, 1))
    for got, want in zip(ys, np.split(x, 3, axis=1), strict=True):
        close(got, want)
    ys = run_op(tmp_path, "split", [x], [np.array(-1, dtype=np.int32)], n_out=2, int_args=(2,))
    for got, want in zip(ys, np.split(x, 2, axis=-1), strict=True):
        close(got, want)
    ys = run_op(tmp_path, "unstack", [x], n_out=2, int_args=(2,))
    for k, got in enumerate(ys):
        close(got, x[:, :, k])


def standardize(x: Array, axes: tuple[int, ...]) -> Array:
    centered = x - x.mean(axis=axes, keepdims=True)
    result: Array = centered / (x.std(axis=axes, keepdims=True) + 1e-12)
    return result


@pytest.mark.parametrize("channels_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_and_standardize(channels_first: bool, bias: bool, tmp_path: Path) -> None:
    x = rand(2, 3, 4)
    (y,) = run_op(tmp_path, "standardize", [x], int_args=(1, 2))
    close(y, standardize(x, (1, 2)))
    c = 3 if channels_first else 4
    gain, offset = rand(c), rand(c)
    weights = [gain, offset] if bias else [gain]
    flags = (channels_first,)
    (y,) = run_op(tmp_path, "layer_norm", [x], weights, int_args=(2,), bool_args=flags)
    shape = (1, c, 1) if channels_first else (1, 1, c)
    expected = standardize(x, (2,)) * gain.reshape(shape)
    close(y, expected + offset.reshape(shape) if bias else expected)
