"""SameDiff element-wise ops -> ONNX: activations, arithmetic with numpy broadcasting (and the
legacy ``*_scalar`` forms, whose operand is the op's stored scalar), comparisons, softmax."""

from __future__ import annotations

from omnihub.convert._errors import Unsupported
from omnihub.convert._samediff_ops import OPS, Converter, OpContext, register

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


@register("relu")
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


@register("relu6")
def _relu6(cx: OpContext) -> list[str]:
    return [cx.node("Clip", [cx.ins[0], cx.scalar(0.0), cx.scalar(6.0)])]


@register("hardtanh")
def _hardtanh(cx: OpContext) -> list[str]:
    return [cx.node("Clip", [cx.ins[0], cx.scalar(-1.0), cx.scalar(1.0)])]


@register("hard_sigmoid", "hardsigmoid")
def _hard_sigmoid(cx: OpContext) -> list[str]:
    return [cx.node("HardSigmoid", cx.ins[:1], alpha=0.2, beta=0.5)]


@register("elu")
def _elu(cx: OpContext) -> list[str]:
    return [cx.node("Elu", cx.ins[:1], alpha=_scalar_arg(cx, 1.0))]


@register("leakyrelu", "lrelu")
def _leakyrelu(cx: OpContext) -> list[str]:
    return [cx.node("LeakyRelu", cx.ins[:1], alpha=_scalar_arg(cx, 0.01))]


@register("swish")
def _swish(cx: OpContext) -> list[str]:
    return [cx.node("Mul", [cx.ins[0], cx.node("Sigmoid", cx.ins[:1])])]


@register("gelu")
def _gelu(cx: OpContext) -> list[str]:
    # libnd4j's gelu transform is the sigmoid approximation x * sigmoid(1.702 x)
    x = cx.ins[0]
    return [cx.node("Mul", [x, cx.node("Sigmoid", [cx.node("Mul", [x, cx.scalar(1.702)])])])]


@register("mish")
def _mish(cx: OpContext) -> list[str]:
    x = cx.ins[0]
    return [cx.node("Mul", [x, cx.node("Tanh", [cx.node("Softplus", [x])])])]


@register("square")
def _square(cx: OpContext) -> list[str]:
    return [cx.node("Mul", [cx.ins[0], cx.ins[0]])]


@register("rsqrt")
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
    # comparisons: boolean results
    "equals": ("Equal", False),
    "greater": ("Greater", False),
    "greater_equal": ("GreaterOrEqual", False),
    "less": ("Less", False),
    "less_equal": ("LessOrEqual", False),
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


@register("not_equals")
def _not_equals(cx: OpContext) -> list[str]:
    return [cx.node("Not", [cx.node("Equal", cx.ins[:2])])]


@register("select", "where")
def _select(cx: OpContext) -> list[str]:
    # select(condition, x, y): x where the condition holds, else y
    if len(cx.ins) != 3:
        raise Unsupported(f"{cx.op.op_name} with {len(cx.ins)} inputs (only condition, x, y)")
    condition = cx.node("Cast", cx.ins[:1], to=9)  # BOOL (a no-op when it is one)
    return [cx.node("Where", [condition, cx.ins[1], cx.ins[2]])]


@register("squaredsubtract")
def _squaredsubtract(cx: OpContext) -> list[str]:
    diff = cx.node("Sub", cx.ins[:2])
    return [cx.node("Mul", [diff, diff])]


@register("softmax", "log_softmax")
def _softmax(cx: OpContext) -> list[str]:
    # the dimension: iArg 0 (custom op), or the node's dimensions (older legacy form)
    axis = cx.op.dimensions[0] if cx.op.dimensions else cx.iarg(0, -1)
    onnx_op = "Softmax" if cx.op.op_name == "softmax" else "LogSoftmax"
    return [cx.node(onnx_op, cx.ins[:1], axis=axis)]


@register("clipbyvalue")
def _clipbyvalue(cx: OpContext) -> list[str]:
    low, high = cx.targ(0, float("-inf")), cx.targ(1, float("inf"))
    return [cx.node("Clip", [cx.ins[0], cx.scalar(low), cx.scalar(high)])]


@register("mergeadd", "mergemax", "mergeavg")
def _merge(cx: OpContext) -> list[str]:
    onnx_op = {"mergeadd": "Sum", "mergemax": "Max", "mergeavg": "Mean"}[cx.op.op_name]
    return [cx.node(onnx_op, cx.ins)]


@register("log1p")
def _log1p(cx: OpContext) -> list[str]:
    return [cx.node("Log", [cx.node("Add", [cx.ins[0], cx.scalar(1.0)])])]


@register("expm1")
def _expm1(cx: OpContext) -> list[str]:
    return [cx.node("Sub", [cx.node("Exp", cx.ins[:1]), cx.scalar(1.0)])]


@register("cube")
def _cube(cx: OpContext) -> list[str]:
    return [cx.node("Pow", [cx.ins[0], cx.scalar(3.0)])]


@register("cast")
def _cast(cx: OpContext) -> list[str]:
    # the target type: dArg 0, else iArg 0 (a DataType code, the same numbering)
    import numpy as np
    from onnx import helper

    from omnihub.loaders._nd4j import NUMPY_DTYPES
    from omnihub.loaders._samediff_enums import DTYPE_NAMES

    name = cx.op.dtype_args[0] if cx.op.dtype_args else DTYPE_NAMES.get(cx.iarg(0, -1), "?")
    code = NUMPY_DTYPES.get(name)
    if code is None:
        raise Unsupported(f"cast to data type {name}")
    return [cx.node("Cast", cx.ins[:1], to=helper.np_dtype_to_tensor_dtype(np.dtype(code)))]
