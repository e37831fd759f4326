"""DL4J's activation functions (the ``Activation`` enum and its ``IActivation`` classes) as ONNX.

A layer's ``activationFn`` appears in three dialects: ``{"@class": "...ActivationLReLU",
"alpha": 0.01}`` (1.0+), ``{"LReLU": {"alpha": 0.01}}`` (pre-1.0 wrapper) and, in 0.x
configurations, ``"activationFunction": "leakyrelu"``. :func:`parse_activation` reduces all
three to a canonical lower-case name and its parameters; :func:`apply_activation` emits the
nodes. SameDiff ops can call :func:`apply_activation` by name too.

Formulas are ND4J's (libnd4j's transforms), at inference:

==================  ==========================================================================
name                f(x)
==================  ==========================================================================
cube                x^3
elu                 x if x > 0 else alpha * (exp(x) - 1)                  (ONNX Elu)
gelu                x * sigmoid(1.702 x); precise: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
hardsigmoid         min(1, max(0, 0.2 x + 0.5))                           (ONNX HardSigmoid)
hardtanh            min(1, max(-1, x))
identity            x
lrelu               x if x > 0 else alpha x                               (ONNX LeakyRelu)
mish                x tanh(softplus(x))                                   (ONNX Mish)
rationaltanh        1.7159 * t(2x/3), t(y) = sgn(y) (1 - 1 / (1 + |y| + y^2 + 1.41645 y^4))
rectifiedtanh       max(0, tanh(x))
relu                max(0, x) (with ``max``/``threshold``/``negativeSlope`` when configured)
relu6               min(6, max(0, x))
rrelu               leaky ReLU with the mean slope (l + u) / 2 (what DL4J uses at test time)
selu                ONNX Selu (DL4J's constants)
sigmoid             1 / (1 + exp(-x))
softmax             along the feature/channel axis
softplus            log(1 + exp(x))
softsign            x / (1 + |x|)
swish               x sigmoid(x)
tanh                tanh(x)
thresholdedrelu     x if x > theta else 0                                 (ONNX ThresholdedRelu)
==================  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported

if TYPE_CHECKING:
    from omnihub.convert._builder import OnnxBuilder

__all__ = ["ACTIVATIONS", "apply_activation", "parse_activation"]

#: The ``Activation`` enum's spellings (and older aliases) -> the canonical name used here.
_ALIASES = {
    "leakyrelu": "lrelu",
    "hard_sigmoid": "hardsigmoid",
    "hard_tanh": "hardtanh",
    "linear": "identity",
    "softmax": "softmax",
    "thresholdedrelu": "thresholdedrelu",
}

#: Every activation :func:`apply_activation` knows.
ACTIVATIONS = frozenset(
    {
        "cube",
        "elu",
        "gelu",
        "hardsigmoid",
        "hardtanh",
        "identity",
        "lrelu",
        "mish",
        "rationaltanh",
        "rectifiedtanh",
        "relu",
        "relu6",
        "rrelu",
        "selu",
        "sigmoid",
        "softmax",
        "softplus",
        "softsign",
        "swish",
        "tanh",
        "thresholdedrelu",
    }
)

_SELU_ALPHA = 1.6732632423543772
_SELU_LAMBDA = 1.0507009873554805


def _canonical(name: str) -> str:
    low = name.lower()
    if low.startswith("activation") and low != "activation":
        low = low[len("activation") :]
    return _ALIASES.get(low, low)


def parse_activation(spec: object) -> tuple[str, Mapping[str, Any]]:
    """``(canonical name, parameters)`` of an activation in any of DL4J's JSON dialects."""
    if spec is None:
        return "identity", {}
    if isinstance(spec, str):
        return _canonical(spec.rsplit(".", 1)[-1]), {}
    if isinstance(spec, Mapping):
        class_name = spec.get("@class")
        if isinstance(class_name, str):
            return _canonical(class_name.rsplit(".", 1)[-1]), spec
        if len(spec) == 1:
            key, body = next(iter(spec.items()))
            if isinstance(body, Mapping):
                return _canonical(str(key)), body
    raise Unsupported(f"activation {spec!r} is not in a known DL4J form")


def _num(params: Mapping[str, Any], key: str, default: float) -> float:
    value = params.get(key)
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def apply_activation(
    b: OnnxBuilder, x: str, spec: object, *, axis: int = 1, name: str | None = None
) -> str:
    """Emit ``activation(x)``; ``spec`` is the JSON value (or a name); ``axis`` is the
    softmax axis. Raises :class:`Unsupported` for an unknown activation."""
    act, params = parse_activation(spec)
    emit = _EMITTERS.get(act)
    if emit is None:
        raise Unsupported(f"activation {act!r} has no ONNX mapping")
    out: str = emit(b, x, params, axis)
    return out


# -- one emitter per activation ----------------------------------------------------------------


def _identity(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return x


def _op(op: str, **attrs: Any) -> Any:
    def emit(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
        return b.node(op, [x], None, **attrs)

    return emit


def _relu(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    top = p.get("max")
    threshold = _num(p, "threshold", 0.0)
    slope = _num(p, "negativeSlope", 0.0)
    if threshold == 0.0 and slope == 0.0:
        y = b.node("Relu", [x])
    else:
        shifted = b.node("Sub", [x, b.scalar(threshold)]) if threshold else x
        below = b.node("Mul", [shifted, b.scalar(slope)])
        keep = b.node("GreaterOrEqual", [x, b.scalar(threshold)])
        y = b.node("Where", [keep, x, below])
    if isinstance(top, int | float) and not isinstance(top, bool):
        y = b.node("Min", [y, b.scalar(float(top))])
    return y


def _clip(low: float, high: float) -> Any:
    # Max/Min, not Clip: onnxruntime's Relu+Clip fusion fails on DOUBLE Clip bounds.
    def emit(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
        return b.node("Min", [b.node("Max", [x, b.scalar(low)]), b.scalar(high)])

    return emit


def _elu(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Elu", [x], alpha=_num(p, "alpha", 1.0))


def _lrelu(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("LeakyRelu", [x], alpha=_num(p, "alpha", 0.01))


def _rrelu(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    slope = 0.5 * (_num(p, "l", 1.0 / 8) + _num(p, "u", 1.0 / 3))
    return b.node("LeakyRelu", [x], alpha=slope)


def _thresholded(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("ThresholdedRelu", [x], alpha=_num(p, "theta", 1.0))


def _selu(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Selu", [x], alpha=_SELU_ALPHA, gamma=_SELU_LAMBDA)


def _softmax(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Softmax", [x], axis=axis)


def _cube(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Mul", [b.node("Mul", [x, x]), x])


def _swish(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Mul", [x, b.node("Sigmoid", [x])])


def _gelu(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    if p.get("precise") is True:
        cubed = b.node("Mul", [b.node("Mul", [x, x]), x])
        inner = b.node("Add", [x, b.node("Mul", [cubed, b.scalar(0.044715)])])
        t = b.node("Tanh", [b.node("Mul", [inner, b.scalar(math.sqrt(2.0 / math.pi))])])
        half_x = b.node("Mul", [x, b.scalar(0.5)])
        return b.node("Mul", [half_x, b.node("Add", [t, b.scalar(1.0)])])
    return b.node("Mul", [x, b.node("Sigmoid", [b.node("Mul", [x, b.scalar(1.702)])])])


def _rectified_tanh(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Relu", [b.node("Tanh", [x])])


def _rational_tanh(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    y = b.node("Mul", [x, b.scalar(2.0 / 3.0)])
    y2 = b.node("Mul", [y, y])
    y4 = b.node("Mul", [y2, y2])
    denominator = b.node("Add", [b.node("Add", [b.scalar(1.0), b.node("Abs", [y])]), y2])
    denominator = b.node("Add", [denominator, b.node("Mul", [y4, b.scalar(1.41645)])])
    t = b.node("Sub", [b.scalar(1.0), b.node("Reciprocal", [denominator])])
    return b.node("Mul", [b.node("Mul", [b.node("Sign", [y]), t]), b.scalar(1.7159)])


def _softsign(b: OnnxBuilder, x: str, p: Mapping[str, Any], axis: int) -> str:
    return b.node("Softsign", [x])


_EMITTERS: dict[str, Any] = {
    "cube": _cube,
    "elu": _elu,
    "gelu": _gelu,
    "hardsigmoid": _op("HardSigmoid", alpha=0.2, beta=0.5),
    "hardtanh": _clip(-1.0, 1.0),
    "identity": _identity,
    "lrelu": _lrelu,
    "mish": _op("Mish"),
    "rationaltanh": _rational_tanh,
    "rectifiedtanh": _rectified_tanh,
    "relu": _relu,
    "relu6": _clip(0.0, 6.0),
    "rrelu": _rrelu,
    "selu": _selu,
    "sigmoid": _op("Sigmoid"),
    "softmax": _softmax,
    "softplus": _op("Softplus"),
    "softsign": _softsign,
    "swish": _swish,
    "tanh": _op("Tanh"),
    "thresholdedrelu": _thresholded,
}
