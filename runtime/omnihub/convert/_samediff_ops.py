"""SameDiff op -> ONNX converters: one function per libnd4j op, in the registry :data:`OPS`.

Each converter gets an :class:`OpContext` (the builder, the op with its iArgs/tArgs/bArgs and
properties, its inputs as ONNX value names) and returns the ONNX names of the op's outputs in
order. Argument orders are libnd4j's (``CUSTOM_OP_IMPL`` in ``ops/declarable/generic``):
e.g. conv2d iArgs ``kH,kW,sH,sW,pH,pW,dH,dW,isSameMode,dataFormat,wFormat``. An op or option
with no ONNX mapping raises :class:`~omnihub.convert._errors.Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported
from omnihub.convert._samediff_lstm import lstm_layer

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from omnihub.convert._builder import OnnxBuilder
    from omnihub.loaders.samediff import SameDiffOp

__all__ = ["LOSS_OPS", "OPS", "OpContext"]


class OpContext:
    """What a converter needs: builder, op, ONNX input names, static values, ranks, dtypes."""

    def __init__(
        self,
        builder: OnnxBuilder,
        op: SameDiffOp,
        inputs: Sequence[str],
        *,
        static: Callable[[str], npt.NDArray[Any] | None],
        rank: Callable[[str], int],
        dtype: np.dtype[Any],
    ) -> None:
        self.b = builder
        self.op = op
        self.ins = list(inputs)
        self._static = static
        self._rank = rank
        self.dtype = dtype  # the dtype of the op's first output

    def iarg(self, index: int, default: int) -> int:
        """iArg ``index`` (libnd4j INT_ARG), or ``default`` when absent."""
        args = self.op.int_args
        return int(args[index]) if len(args) > index else default

    def targ(self, index: int, default: float) -> float:
        """tArg ``index`` (libnd4j T_ARG), or ``default`` when absent."""
        args = self.op.float_args
        return float(args[index]) if len(args) > index else default

    def barg(self, index: int, default: bool) -> bool:
        """bArg ``index`` (libnd4j B_ARG), or ``default`` when absent."""
        args = self.op.bool_args
        return bool(args[index]) if len(args) > index else default

    def prop(self, name: str) -> object | None:
        """The first value of the SameDiff property ``name`` (None when absent or empty)."""
        values = self.op.properties.get(name, ())
        return values[0] if values else None

    def static(self, index: int) -> npt.NDArray[Any] | None:
        """The value of input ``index`` when it is a stored constant or weight, else None."""
        return self._static(self.op.inputs[index]) if index < len(self.ins) else None

    def rank(self, index: int) -> int:
        """The rank of input ``index`` (from declared shapes or ONNX shape inference)."""
        return self._rank(self.ins[index])

    def node(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        """One single-output node named after this op."""
        return self.b.node(op_type, inputs, self.hint(op_type), **attrs)

    def hint(self, what: str) -> str:
        return f"{self.op.name}/{what}"

    def ints(self, values: Sequence[int]) -> str:
        """An int64 vector constant."""
        import numpy as np

        return self.b.constant(np.asarray(list(values), dtype=np.int64), name=self.hint("ints"))

    def scalar(self, value: float) -> str:
        """A scalar of this op's output dtype."""
        return self.b.constant(value, dtype=self.dtype, name=self.hint("scalar"))

    def int_values(self, index: int, what: str) -> list[int]:
        """The integer values of input ``index``, which must be a stored constant."""
        value = self.static(index)
        if value is None:
            raise Unsupported(f"{what} (input {index}) must be a constant")
        return [int(v) for v in value.reshape(-1)]

    def dims(self) -> list[int] | None:
        """Reduction dimensions: the node's dimensions, iArgs, or a constant 2nd input; None
        means every dimension."""
        if self.op.dimensions:
            return list(self.op.dimensions)
        if len(self.ins) > 1:
            return self.int_values(1, "dimensions")
        if self.op.int_args:
            return [int(v) for v in self.op.int_args]
        return None


Converter = Callable[[OpContext], list[str]]
OPS: dict[str, Converter] = {"lstmLayer": lstm_layer}

#: Loss ops: training only; never part of the inference graph.
LOSS_OPS = frozenset(
    {
        "log_loss",
        "absolute_difference_loss",
        "cosine_distance_loss",
        "hinge_loss",
        "huber_loss",
        "l2_loss",
        "log_poisson_loss",
        "mean_pairwssqerr_loss",
        "mean_sqerr_loss",
        "sigm_cross_entropy_loss",
        "softmax_cross_entropy_loss",
        "softmax_cross_entropy_loss_with_logits",
        "sparse_softmax_cross_entropy_loss_with_logits",
        "ctc_loss",
    }
)


def _register(*names: str) -> Callable[[Converter], Converter]:
    def wrap(fn: Converter) -> Converter:
        for name in names:
            OPS[name] = fn
        return fn

    return wrap


# -- element-wise ---------------------------------------------------------------------------------

_UNARY = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "exp": "Exp",
    "log": "Log",
    "sqrt": "Sqrt",
    "abs": "Abs",
    "neg": "Neg",
    "floor": "Floor",
    "ceil": "Ceil",
    "sin": "Sin",
    "cos": "Cos",
    "erf": "Erf",
    "sign": "Sign",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "selu": "Selu",
    "identity": "Identity",
    "reciprocal": "Reciprocal",
    # dropout at inference is the identity
    "dropout": "Identity",
    "dropout_inverted": "Identity",
    "alpha_dropout": "Identity",
}


def _unary(onnx_op: str) -> Converter:
    def convert(cx: OpContext) -> list[str]:
        return [cx.node(onnx_op, cx.ins[:1])]

    return convert


for _name, _onnx in _UNARY.items():
    OPS[_name] = _unary(_onnx)


@_register("relu")
def _relu(cx: OpContext) -> list[str]:
    # legacy scalar op: x > cutoff ? x : 0 (cutoff is the op's scalar, default 0)
    cutoff = _scalar_arg(cx, 0.0)
    if cutoff == 0.0:
        return [cx.node("Relu", cx.ins[:1])]
    x = cx.ins[0]
    keep = cx.node("Greater", [x, cx.scalar(cutoff)])
    return [cx.node("Where", [keep, x, cx.scalar(0.0)])]


def _scalar_arg(cx: OpContext, default: float) -> float:
    """A legacy scalar op's scalar: the node's ``scalar`` array, else tArg 0."""
    scalar = cx.op.scalar
    if scalar is not None and scalar.size == 1:
        return float(scalar.reshape(-1)[0])
    return cx.targ(0, default)


@_register("relu6")
def _relu6(cx: OpContext) -> list[str]:
    return [cx.node("Clip", [cx.ins[0], cx.scalar(0.0), cx.scalar(6.0)])]


@_register("hardtanh")
def _hardtanh(cx: OpContext) -> list[str]:
    return [cx.node("Clip", [cx.ins[0], cx.scalar(-1.0), cx.scalar(1.0)])]


@_register("hard_sigmoid", "hardsigmoid")
def _hard_sigmoid(cx: OpContext) -> list[str]:
    return [cx.node("HardSigmoid", cx.ins[:1], alpha=0.2, beta=0.5)]


@_register("elu")
def _elu(cx: OpContext) -> list[str]:
    return [cx.node("Elu", cx.ins[:1], alpha=_scalar_arg(cx, 1.0))]


@_register("leakyrelu", "lrelu")
def _leakyrelu(cx: OpContext) -> list[str]:
    return [cx.node("LeakyRelu", cx.ins[:1], alpha=_scalar_arg(cx, 0.01))]


@_register("swish")
def _swish(cx: OpContext) -> list[str]:
    return [cx.node("Mul", [cx.ins[0], cx.node("Sigmoid", cx.ins[:1])])]


@_register("gelu")
def _gelu(cx: OpContext) -> list[str]:
    # libnd4j's gelu transform is the sigmoid approximation x * sigmoid(1.702 x)
    x = cx.ins[0]
    return [cx.node("Mul", [x, cx.node("Sigmoid", [cx.node("Mul", [x, cx.scalar(1.702)])])])]


@_register("mish")
def _mish(cx: OpContext) -> list[str]:
    x = cx.ins[0]
    return [cx.node("Mul", [x, cx.node("Tanh", [cx.node("Softplus", [x])])])]


@_register("square")
def _square(cx: OpContext) -> list[str]:
    return [cx.node("Mul", [cx.ins[0], cx.ins[0]])]


@_register("rsqrt")
def _rsqrt(cx: OpContext) -> list[str]:
    return [cx.node("Reciprocal", [cx.node("Sqrt", cx.ins[:1])])]


_BINARY = {
    "add": ("Add", False),
    "sub": ("Sub", False),
    "subtract": ("Sub", False),
    "mul": ("Mul", False),
    "multiply": ("Mul", False),
    "div": ("Div", False),
    "divide": ("Div", False),
    "realdiv": ("Div", False),
    "rsub": ("Sub", True),
    "reversesubtract": ("Sub", True),
    "rdiv": ("Div", True),
    "reversedivide": ("Div", True),
    "pow": ("Pow", False),
    "maximum": ("Max", False),
    "minimum": ("Min", False),
}
# legacy scalar forms: the second operand is the op's scalar
_SCALAR = {
    "add_scalar": ("Add", False),
    "sub_scalar": ("Sub", False),
    "mul_scalar": ("Mul", False),
    "div_scalar": ("Div", False),
    "rsub_scalar": ("Sub", True),
    "rdiv_scalar": ("Div", True),
    "pow_scalar": ("Pow", False),
    "max_scalar": ("Max", False),
    "min_scalar": ("Min", False),
}


def _binary(onnx_op: str, reverse: bool, scalar: bool) -> Converter:
    def convert(cx: OpContext) -> list[str]:
        if scalar:
            x, y = cx.ins[0], cx.scalar(_scalar_arg(cx, 0.0))
        elif len(cx.ins) >= 2:
            x, y = cx.ins[0], cx.ins[1]
        else:
            raise Unsupported(f"expected two inputs, got {len(cx.ins)}")
        return [cx.node(onnx_op, [y, x] if reverse else [x, y])]

    return convert


for _name, (_onnx, _rev) in _BINARY.items():
    OPS[_name] = _binary(_onnx, _rev, scalar=False)
for _name, (_onnx, _rev) in _SCALAR.items():
    OPS[_name] = _binary(_onnx, _rev, scalar=True)


_COMPARE = {
    "equals": "Equal",
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
    "less": "Less",
    "less_equal": "LessOrEqual",
}


def _compare(onnx_op: str) -> Converter:
    def convert(cx: OpContext) -> list[str]:
        return [cx.node(onnx_op, cx.ins[:2])]

    return convert


for _name, _onnx in _COMPARE.items():
    OPS[_name] = _compare(_onnx)


@_register("not_equals")
def _not_equals(cx: OpContext) -> list[str]:
    return [cx.node("Not", [cx.node("Equal", cx.ins[:2])])]


@_register("select", "where")
def _select(cx: OpContext) -> list[str]:
    # select(condition, x, y): x where the condition holds, else y
    if len(cx.ins) != 3:
        raise Unsupported(f"{cx.op.op_name} with {len(cx.ins)} inputs (only condition, x, y)")
    condition = cx.node("Cast", cx.ins[:1], to=9)  # BOOL (a no-op when it is one)
    return [cx.node("Where", [condition, cx.ins[1], cx.ins[2]])]


@_register("squaredsubtract")
def _squaredsubtract(cx: OpContext) -> list[str]:
    diff = cx.node("Sub", cx.ins[:2])
    return [cx.node("Mul", [diff, diff])]


@_register("softmax", "log_softmax")
def _softmax(cx: OpContext) -> list[str]:
    axis = cx.iarg(0, -1)
    onnx_op = "Softmax" if cx.op.op_name == "softmax" else "LogSoftmax"
    return [cx.node(onnx_op, cx.ins[:1], axis=axis)]


# -- linear algebra ----------------------------------------------------------------------


def _transpose_last2(cx: OpContext, value: str, index: int) -> str:
    rank = cx.rank(index)
    perm = [*range(rank - 2), rank - 1, rank - 2]
    return cx.node("Transpose", [value], perm=perm)


@_register("mmul", "matmul")
def _matmul(cx: OpContext) -> list[str]:
    # iArgs transposeX, transposeY, transposeZ; tArgs alpha, beta (beta only with an output
    # array given in place, which a graph never has)
    a, b = cx.ins[0], cx.ins[1]
    if cx.iarg(0, 0):
        a = _transpose_last2(cx, a, 0)
    if cx.iarg(1, 0):
        b = _transpose_last2(cx, b, 1)
    out = cx.node("MatMul", [a, b])
    alpha = cx.targ(0, 1.0)
    if alpha != 1.0:
        out = cx.node("Mul", [out, cx.scalar(alpha)])
    if cx.iarg(2, 0):
        rank = max(cx.rank(0), cx.rank(1))
        out = cx.node("Transpose", [out], perm=[*range(rank - 2), rank - 1, rank - 2])
    return [out]


@_register("xw_plus_b")
def _xw_plus_b(cx: OpContext) -> list[str]:
    w = cx.ins[1]
    if cx.iarg(0, 0):  # bTranspose: w is [nOut, nIn]
        w = cx.node("Transpose", [w], perm=[1, 0])
    return [cx.node("Add", [cx.node("MatMul", [cx.ins[0], w]), cx.ins[2]])]


@_register("biasadd")
def _biasadd(cx: OpContext) -> list[str]:
    x, bias = cx.ins[0], cx.ins[1]
    if cx.barg(0, False):  # NCHW: the bias runs along dimension 1
        trailing = cx.rank(0) - 2
        if trailing > 0:
            bias = cx.node("Unsqueeze", [bias, cx.ints(range(1, trailing + 1))])
    return [cx.node("Add", [x, bias])]


# -- shapes ---------------------------------------------------------------------------------------

_ORDER_C, _ORDER_F = -99, -102  # libnd4j passes the order char negated as iArg 0


@_register("reshape")
def _reshape(cx: OpContext) -> list[str]:
    args = list(cx.op.int_args)
    order = "c"
    if args and args[0] in (_ORDER_C, _ORDER_F):
        order = "f" if args.pop(0) == _ORDER_F else "c"
    if len(cx.ins) > 1:
        shape_value = cx.static(1)
        shape = (
            cx.ints([int(v) for v in shape_value.reshape(-1)])
            if shape_value is not None
            else cx.node("Cast", [cx.ins[1]], to=7)  # INT64
        )
    elif args:
        shape = cx.ints(args)
    else:
        raise Unsupported("reshape without a shape")
    x = cx.ins[0]
    if order == "c":
        return [cx.node("Reshape", [x, shape])]
    # 'f' order: reverse the axes, reshape to the reversed shape in 'c' order, reverse back
    reversed_shape = cx.node(
        "Slice", [shape, cx.ints([-1]), cx.ints([-(2**62)]), cx.ints([0]), cx.ints([-1])]
    )
    flat = cx.node("Reshape", [cx.node("Transpose", [x]), reversed_shape])
    return [cx.node("Transpose", [flat])]


@_register("permute", "transpose")
def _permute(cx: OpContext) -> list[str]:
    from_input = len(cx.ins) > 1
    perm = cx.int_values(1, "permutation") if from_input else [int(v) for v in cx.op.int_args]
    if not perm:  # transpose without a permutation reverses the axes
        return [cx.node("Transpose", cx.ins[:1])]
    rank = len(perm)
    return [cx.node("Transpose", cx.ins[:1], perm=[p % rank for p in perm])]


@_register("concat")
def _concat(cx: OpContext) -> list[str]:
    values = list(cx.ins)
    if cx.barg(0, False):  # isDynamicAxis: the axis is the last input
        axis = cx.int_values(len(values) - 1, "concat axis")[0]
        values = values[:-1]
    else:
        axis = cx.iarg(len(cx.op.int_args) - 1, 0) if cx.op.int_args else 0
    return [cx.node("Concat", values, axis=axis)]


@_register("stack")
def _stack(cx: OpContext) -> list[str]:
    axis = cx.iarg(0, 0)
    axes = cx.ints([axis])
    return [cx.node("Concat", [cx.node("Unsqueeze", [v, axes]) for v in cx.ins], axis=axis)]


@_register("gather")
def _gather(cx: OpContext) -> list[str]:
    if len(cx.ins) > 1:
        axis, indices = cx.iarg(0, 0), cx.ins[1]
    else:  # indices as iArgs after the axis
        axis, indices = cx.iarg(0, 0), cx.ints(cx.op.int_args[1:])
    return [cx.node("Gather", [cx.ins[0], indices], axis=axis)]


@_register("squeeze")
def _squeeze(cx: OpContext) -> list[str]:
    axes = cx.int_values(1, "axes") if len(cx.ins) > 1 else [int(v) for v in cx.op.int_args]
    inputs = [cx.ins[0], cx.ints(axes)] if axes else cx.ins[:1]
    return [cx.node("Squeeze", inputs)]


@_register("expand_dims")
def _expand_dims(cx: OpContext) -> list[str]:
    axis = cx.int_values(1, "axis")[0] if len(cx.ins) > 1 else cx.iarg(0, 0)
    return [cx.node("Unsqueeze", [cx.ins[0], cx.ints([axis])])]


@_register("flatten_2d")
def _flatten_2d(cx: OpContext) -> list[str]:
    return [cx.node("Flatten", cx.ins[:1], axis=cx.iarg(0, 1))]


@_register("shape_of")
def _shape_of(cx: OpContext) -> list[str]:
    return [cx.node("Shape", cx.ins[:1])]


@_register("pad")
def _pad(cx: OpContext) -> list[str]:
    # inputs: x, paddings [rank, 2] (begin, end per axis), optional pad value; iArg 0 mode
    mode = {0: "constant", 1: "reflect"}.get(cx.iarg(0, 0))
    if mode is None:
        raise Unsupported("pad mode SYMMETRIC has no ONNX equivalent")
    paddings = cx.static(1)
    if paddings is None:
        raise Unsupported("paddings (input 1) must be a constant")
    pads = cx.ints([int(v) for v in paddings[:, 0]] + [int(v) for v in paddings[:, 1]])
    value = cx.ins[2] if len(cx.ins) > 2 else cx.scalar(cx.targ(0, 0.0))
    return [cx.node("Pad", [cx.ins[0], pads, value], mode=mode)]


_END = 2**62  # "to the end" for ONNX Slice (clamped to the dimension)


@_register("slice")
def _slice(cx: OpContext) -> list[str]:
    # inputs x, begin, size (or iArgs begin..., size...); size -1 = to the end
    if len(cx.ins) >= 3:
        begin, size = cx.int_values(1, "begin"), cx.int_values(2, "size")
    else:
        args = [int(v) for v in cx.op.int_args]
        begin, size = args[: len(args) // 2], args[len(args) // 2 :]
    ends = [_END if n < 0 else b + n for b, n in zip(begin, size, strict=True)]
    axes = list(range(len(begin)))
    return [cx.node("Slice", [cx.ins[0], cx.ints(begin), cx.ints(ends), cx.ints(axes)])]


@_register("strided_slice")
def _strided_slice(cx: OpContext) -> list[str]:
    # iArgs begin_mask, ellipsis_mask, end_mask, new_axis_mask, shrink_axis_mask, then
    # begin..., end..., strides... unless given as inputs 1-3
    masks = [cx.iarg(i, 0) for i in range(5)]
    begin_mask, ellipsis, end_mask, new_axis, shrink = masks
    if ellipsis or new_axis:
        raise Unsupported("strided_slice with an ellipsis or new-axis mask")
    if len(cx.ins) >= 4:
        begin, end, step = (
            cx.int_values(i, what) for i, what in ((1, "begin"), (2, "end"), (3, "strides"))
        )
    else:
        args = [int(v) for v in cx.op.int_args[5:]]
        n = len(args) // 3
        begin, end, step = args[:n], args[n : 2 * n], args[2 * n :]
    starts, ends = list(begin), list(end)
    for i, s in enumerate(step):
        if begin_mask >> i & 1:
            starts[i] = 0 if s > 0 else _END
        if end_mask >> i & 1:
            ends[i] = _END if s > 0 else -_END
        if shrink >> i & 1:  # one element, dimension dropped
            ends[i] = _END if starts[i] == -1 else starts[i] + 1
            step[i] = 1
    axes = list(range(len(starts)))
    y = cx.node("Slice", [cx.ins[0], cx.ints(starts), cx.ints(ends), cx.ints(axes), cx.ints(step)])
    dropped = [i for i in axes if shrink >> i & 1]
    return [cx.node("Squeeze", [y, cx.ints(dropped)]) if dropped else y]


@_register("tile")
def _tile(cx: OpContext) -> list[str]:
    reps = cx.int_values(1, "repeats") if len(cx.ins) > 1 else [int(v) for v in cx.op.int_args]
    return [cx.node("Tile", [cx.ins[0], cx.ints(reps)])]


@_register("clipbyvalue")
def _clipbyvalue(cx: OpContext) -> list[str]:
    low, high = cx.targ(0, float("-inf")), cx.targ(1, float("inf"))
    return [cx.node("Clip", [cx.ins[0], cx.scalar(low), cx.scalar(high)])]


@_register("mergeadd", "mergemax", "mergeavg")
def _merge(cx: OpContext) -> list[str]:
    onnx_op = {"mergeadd": "Sum", "mergemax": "Max", "mergeavg": "Mean"}[cx.op.op_name]
    return [cx.node(onnx_op, cx.ins)]


@_register("log1p")
def _log1p(cx: OpContext) -> list[str]:
    return [cx.node("Log", [cx.node("Add", [cx.ins[0], cx.scalar(1.0)])])]


@_register("expm1")
def _expm1(cx: OpContext) -> list[str]:
    return [cx.node("Sub", [cx.node("Exp", cx.ins[:1]), cx.scalar(1.0)])]


@_register("cube")
def _cube(cx: OpContext) -> list[str]:
    return [cx.node("Pow", [cx.ins[0], cx.scalar(3.0)])]


# -- reductions -----------------------------------------------------------------------------------

_REDUCE = {
    "reduce_mean": "ReduceMean",
    "reduce_sum": "ReduceSum",
    "reduce_max": "ReduceMax",
    "reduce_min": "ReduceMin",
    "reduce_prod": "ReduceProd",
    "reduce_norm1": "ReduceL1",
    "reduce_norm2": "ReduceL2",
    "reduce_sqnorm": "ReduceSumSquare",
    "reduce_logsumexp": "ReduceLogSumExp",
}


def _keep_dims(cx: OpContext) -> bool:
    keep = cx.prop("keepDims")
    if isinstance(keep, bool):
        return keep
    return cx.barg(0, False)


def _reduce(onnx_op: str) -> Converter:
    def convert(cx: OpContext) -> list[str]:
        dims = cx.dims()
        keep = int(_keep_dims(cx))
        inputs = [cx.ins[0]] if not dims else [cx.ins[0], cx.ints(dims)]
        return [cx.node(onnx_op, inputs, keepdims=keep)]

    return convert


for _name, _onnx in _REDUCE.items():
    OPS[_name] = _reduce(_onnx)


@_register("argmax", "argmin")
def _argmax(cx: OpContext) -> list[str]:
    dims = cx.dims()
    onnx_op = "ArgMax" if cx.op.op_name == "argmax" else "ArgMin"
    keep = int(_keep_dims(cx))
    if not dims:  # over every element: flatten first
        flat = cx.node("Reshape", [cx.ins[0], cx.ints([-1])])
        return [cx.node(onnx_op, [flat], axis=0, keepdims=0)]
    if len(dims) != 1:
        raise Unsupported(f"{cx.op.op_name} over several dimensions {dims}")
    return [cx.node(onnx_op, cx.ins[:1], axis=dims[0], keepdims=keep)]


# -- convolution and pooling ------------------------------------------------------------


def _channels_first(cx: OpContext, x: str, spatial: int, channels_last: bool) -> str:
    if not channels_last:
        return x
    return cx.node("Transpose", [x], perm=[0, spatial + 1, *range(1, spatial + 1)])


def _channels_back(cx: OpContext, y: str, spatial: int, channels_last: bool) -> str:
    if not channels_last:
        return y
    return cx.node("Transpose", [y], perm=[0, *range(2, spatial + 2), 1])


def _window(cx: OpContext, spatial: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """kernel, strides, pads (per dim), dilations from iArgs k..., s..., p..., d..."""
    args = [cx.iarg(i, 0) for i in range(4 * spatial)]
    kernel, strides = args[:spatial], args[spatial : 2 * spatial]
    pads, dilations = args[2 * spatial : 3 * spatial], args[3 * spatial : 4 * spatial]
    return kernel, [s or 1 for s in strides], pads, [d or 1 for d in dilations]


def _same_padding(
    cx: OpContext,
    x: str,
    *,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    fill: float,
) -> str:
    """Pad ``x`` (channels first) as libnd4j's SAME mode does: output ceil(in / stride), the
    odd pixel at the end; computed from the run-time size (onnxruntime's auto_pad refuses
    dilation)."""
    import numpy as np

    size = cx.node("Shape", [x], start=2)
    s, k, d = (cx.ints(v) for v in (strides, kernel, dilations))
    one, zero = cx.ints([1]), cx.ints([0])
    out = cx.node("Div", [cx.node("Sub", [cx.node("Add", [size, s]), one]), s])
    reach = cx.node("Add", [cx.node("Mul", [cx.node("Sub", [k, one]), d]), one])
    needed = cx.node("Add", [cx.node("Mul", [cx.node("Sub", [out, one]), s]), reach])
    total = cx.node("Max", [cx.node("Sub", [needed, size]), zero])
    begin = cx.node("Div", [total, cx.ints([2])])
    end = cx.node("Sub", [total, begin])
    pads = cx.node("Concat", [cx.ints([0, 0]), begin, cx.ints([0, 0]), end], axis=0)
    value = cx.b.constant(np.array(fill, dtype=cx.dtype), name=cx.hint("fill"))
    return cx.node("Pad", [x, pads, value])


def _kernel(cx: OpContext, kernel: list[int], w_format: int) -> list[int]:
    """The kernel size: the iArgs, or (when they are 0) the stored weights' shape."""
    if all(kernel):
        return kernel
    weights = cx.static(1)
    if weights is None:
        raise Unsupported("kernel size 0 in the iArgs and the weights are not stored")
    n = len(kernel)
    shape = list(weights.shape)
    return {0: shape[:n], 1: shape[2:], 2: shape[1 : n + 1]}[w_format]


def _conv_weights(
    cx: OpContext, w_format: int, kernel: list[int], depthwise: bool
) -> tuple[str, int]:
    """The weights as ONNX wants them, [oC, iC / group, k...], and the group count.

    libnd4j stores [k..., iC, oC] (format 0), [oC, iC, k...] (1) or [oC, k..., iC] (2); for
    depthwise_conv2d oC is the channel multiplier mC and output channel c * mC + m."""
    n = len(kernel)
    if w_format not in (0, 1, 2):
        raise Unsupported(f"weight format {w_format}")
    if not depthwise:
        perm = {0: [n + 1, n, *range(n)], 1: None, 2: [0, n + 1, *range(1, n + 1)]}[w_format]
        w = cx.ins[1] if perm is None else cx.node("Transpose", [cx.ins[1]], perm=perm)
        return w, 1
    stored = cx.static(1)
    if stored is None:
        raise Unsupported("depthwise weights must be stored (the group count is their iC)")
    channels = int(stored.shape[{0: n, 1: 1, 2: n + 1}[w_format]])
    order = {0: [n, n + 1, *range(n)], 1: [1, 0, *range(2, n + 2)], 2: [n + 1, 0, *range(1, n + 1)]}
    grouped = cx.node("Transpose", [cx.ins[1]], perm=order[w_format])  # [iC, mC, k...]
    return cx.node("Reshape", [grouped, cx.ints([-1, 1, *kernel])]), channels


def _conv(spatial: int, *, depthwise: bool = False) -> Converter:
    # conv1d: kW sW pW dW paddingMode(0 VALID, 1 SAME, 2 CAUSAL) dataFormat(0 NCW, 1 NWC) wFormat
    # conv2d, depthwise_conv2d: k(2) s(2) p(2) d(2) isSameMode dataFormat(0 NCHW, 1 NHWC) wFormat
    # conv3dnew: k(3) s(3) p(3) d(3) paddingMode dataFormat(0 NCDHW, 1 NDHWC) wFormat
    def convert(cx: OpContext) -> list[str]:
        kernel, strides, pads, dilations = _window(cx, spatial)
        mode = cx.iarg(4 * spatial, 0)
        if mode not in (0, 1) and not (mode == 2 and spatial == 1):
            raise Unsupported(f"padding mode {mode}")
        channels_last = bool(cx.iarg(4 * spatial + 1, 0))
        w_format = cx.iarg(4 * spatial + 2, 0)
        kernel = _kernel(cx, kernel, w_format)
        w, group = _conv_weights(cx, w_format, kernel, depthwise)
        x = _channels_first(cx, cx.ins[0], spatial, channels_last)
        attrs: dict[str, Any] = {"strides": strides, "dilations": dilations, "group": group}
        if mode == 1:
            x = _same_padding(cx, x, kernel=kernel, strides=strides, dilations=dilations, fill=0.0)
        elif mode == 2:  # causal: all the padding before the first step
            left = (kernel[0] - 1) * dilations[0]
            x = cx.node("Pad", [x, cx.ints([0, 0, left, 0, 0, 0])])
        else:
            attrs["pads"] = pads + pads
        inputs = [x, w] + ([cx.ins[2]] if len(cx.ins) > 2 else [])
        y = cx.node("Conv", inputs, kernel_shape=kernel, **attrs)
        return [_channels_back(cx, y, spatial, channels_last)]

    return convert


OPS["conv1d"] = _conv(1)
OPS["conv2d"] = _conv(2)
OPS["conv3dnew"] = _conv(3)
OPS["depthwise_conv2d"] = _conv(2, depthwise=True)


@_register("upsampling2d")
def _upsampling2d(cx: OpContext) -> list[str]:
    # iArgs factorH, factorW, isNCHW (1 = NCHW, the default 0 = NHWC): nearest neighbour
    factors = [cx.iarg(0, 1), cx.iarg(1, 1)]
    scales = [1.0, 1.0, *factors] if cx.iarg(2, 0) else [1.0, *factors, 1.0]
    import numpy as np

    scale = cx.b.constant(np.asarray(scales, dtype=np.float32), name=cx.hint("scales"))
    return [
        cx.node(
            "Resize",
            [cx.ins[0], "", scale],
            mode="nearest",
            nearest_mode="floor",
            coordinate_transformation_mode="asymmetric",
        )
    ]


def _pool(spatial: int, kind: str) -> Converter:
    # maxpool2d/avgpool2d: k(2) s(2) p(2) d(2) isSameMode extraParam0 dataFormat(0 NCHW, 1 NHWC)
    # maxpool3dnew/avgpool3dnew: k(3) s(3) p(3) d(3) isSameMode extraParam0 dataFormat
    def convert(cx: OpContext) -> list[str]:
        kernel, strides, pads, dilations = _window(cx, spatial)
        same = cx.iarg(4 * spatial, 0)
        extra = cx.iarg(4 * spatial + 1, 0)
        channels_last = bool(cx.iarg(4 * spatial + 2, 0))
        x = _channels_first(cx, cx.ins[0], spatial, channels_last)
        attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides}
        if same and kind == "max":  # padded cells never win a max
            x = _same_padding(
                cx, x, kernel=kernel, strides=strides, dilations=dilations, fill=float("-inf")
            )
        elif same:  # average: ONNX's SAME_UPPER pads like libnd4j and can exclude the pad
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            attrs["pads"] = pads + pads
        if kind == "max":
            attrs["dilations"] = dilations
            y = cx.node("MaxPool", [x], **attrs)
        else:
            if any(d != 1 for d in dilations):
                raise Unsupported("dilated average pooling")
            # extraParam0: 0 = divide by the unpadded count, 1 = by the kernel size
            y = cx.node("AveragePool", [x], count_include_pad=int(extra == 1), **attrs)
        return [_channels_back(cx, y, spatial, channels_last)]

    return convert


OPS["maxpool2d"] = _pool(2, "max")
OPS["avgpool2d"] = _pool(2, "avg")
OPS["maxpool3dnew"] = _pool(3, "max")
OPS["avgpool3dnew"] = _pool(3, "avg")


@_register("lrn")
def _lrn(cx: OpContext) -> list[str]:
    # tArgs bias, alpha, beta; iArg depth (half window); along the LAST axis (TensorFlow's
    # local_response_normalization): x / (bias + alpha * sum of squares in +-depth) ** beta.
    # ONNX LRN runs along axis 1 with alpha divided by the window size.
    bias, alpha, beta = cx.targ(0, 1.0), cx.targ(1, 1.0), cx.targ(2, 0.5)
    size = 2 * cx.iarg(0, 5) + 1
    channels_first = cx.node("Transpose", cx.ins[:1], perm=[0, 3, 1, 2])
    y = cx.node("LRN", [channels_first], size=size, alpha=alpha * size, beta=beta, bias=bias)
    return [cx.node("Transpose", [y], perm=[0, 2, 3, 1])]


@_register("batchnorm")
def _batchnorm(cx: OpContext) -> list[str]:
    # inputs x, mean, variance, [gamma if applyScale], [beta if applyOffset];
    # iArgs applyScale, applyOffset, axes... (default: the last); tArg 0 epsilon
    apply_scale, apply_offset = cx.iarg(0, 0), cx.iarg(1, 0)
    axes = [int(a) for a in cx.op.int_args[2:]] or [-1]
    if len(axes) != 1:
        raise Unsupported(f"batchnorm over several axes {axes}")
    rank = cx.rank(0)
    axis = axes[0] % rank

    def along_axis(value: str) -> str:
        trailing = rank - 1 - axis
        if trailing == 0:
            return value
        return cx.node("Unsqueeze", [value, cx.ints(range(1, trailing + 1))])

    x, mean, var = cx.ins[0], along_axis(cx.ins[1]), along_axis(cx.ins[2])
    std = cx.node("Sqrt", [cx.node("Add", [var, cx.scalar(cx.targ(0, 1e-5))])])
    y = cx.node("Div", [cx.node("Sub", [x, mean]), std])
    index = 3
    if apply_scale:
        y = cx.node("Mul", [y, along_axis(cx.ins[index])])
        index += 1
    if apply_offset:
        y = cx.node("Add", [y, along_axis(cx.ins[index])])
    return [y]
