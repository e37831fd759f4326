"""DL4J layer configurations: type names in both JSON dialects and parameter layouts.

DL4J flattens all parameters of a network into one vector, layer after layer; inside a layer
its ``ParamInitializer`` fixes the order, shape and element order of each parameter. This
module knows those layouts for the common built-in layers, so a loaded network can be split
into named arrays (``"0_W"``, ``"0_b"``, ...) and its parameter count checked against the
configuration. Unknown layer types are kept; their layout is inferred only in the one
unambiguous case (a ``["W", "b"]`` layer with ``nIn``/``nOut``, the feed-forward default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "LAYER_ALIASES",
    "Dl4jLayer",
    "Dl4jVertex",
    "ParamLayout",
    "inner_layer",
    "layer_type_name",
    "param_layout",
]

#: One parameter: (name, shape, "c" or "f" element order).
ParamLayout = tuple[str, tuple[int, ...], str]

#: Pre-1.0 wrapper keys (``{"dense": {...}}``) -> the layer's class name.
LAYER_ALIASES: dict[str, str] = {
    "autoEncoder": "AutoEncoder",
    "RBM": "RBM",
    "activation": "ActivationLayer",
    "batchNormalization": "BatchNormalization",
    "CenterLossOutputLayer": "CenterLossOutputLayer",
    "cnnLoss": "CnnLossLayer",
    "convolution": "ConvolutionLayer",
    "convolution1d": "Convolution1DLayer",
    "dense": "DenseLayer",
    "dropout": "DropoutLayer",
    "embedding": "EmbeddingLayer",
    "globalPooling": "GlobalPoolingLayer",
    "gravesBidirectionalLSTM": "GravesBidirectionalLSTM",
    "gravesLSTM": "GravesLSTM",
    "LSTM": "LSTM",
    "localResponseNormalization": "LocalResponseNormalization",
    "loss": "LossLayer",
    "output": "OutputLayer",
    "rnnLoss": "RnnLossLayer",
    "rnnoutput": "RnnOutputLayer",
    "subsampling": "SubsamplingLayer",
    "subsampling1d": "Subsampling1DLayer",
    "zeroPadding": "ZeroPaddingLayer",
    "VariationalAutoencoder": "VariationalAutoencoder",
}

_NO_PARAMS = frozenset(
    {
        "ActivationLayer",
        "Cnn3DLossLayer",
        "CnnLossLayer",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "DropoutLayer",
        "GlobalPoolingLayer",
        "LocalResponseNormalization",
        "LossLayer",
        "MaskLayer",
        "RnnLossLayer",
        "SpaceToBatchLayer",
        "SpaceToDepthLayer",
        "Subsampling1DLayer",
        "Subsampling3DLayer",
        "SubsamplingLayer",
        "Upsampling1D",
        "Upsampling2D",
        "Upsampling3D",
        "ZeroPadding1DLayer",
        "ZeroPadding3DLayer",
        "ZeroPaddingLayer",
    }
)
_DEFAULT = frozenset(
    {"DenseLayer", "OutputLayer", "RnnOutputLayer", "EmbeddingLayer", "EmbeddingSequenceLayer"}
)


def layer_type_name(class_name: str) -> str:
    """The simple class name of a DL4J layer (``org...layers.DenseLayer`` -> ``DenseLayer``)."""
    return LAYER_ALIASES.get(class_name, class_name.rsplit(".", 1)[-1])


def _int(conf: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = conf.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _kernel(conf: Mapping[str, Any], rank: int) -> tuple[int, ...] | None:
    kernel = conf.get("kernelSize")
    if isinstance(kernel, int) and not isinstance(kernel, bool):
        kernel = [kernel]
    if not isinstance(kernel, list) or not all(isinstance(k, int) and k >= 0 for k in kernel):
        return None
    dims = tuple(int(k) for k in kernel)
    if rank == 2 and len(dims) == 1:  # Convolution1DLayer stores [k] or [k, 1]
        dims = (dims[0], 1)
    return dims if len(dims) == rank else None


def _lstm(prefix: str, suffix: str, n_in: int, n_out: int, peephole: int) -> list[ParamLayout]:
    return [
        (f"{prefix}W{suffix}", (n_in, 4 * n_out), "f"),
        (f"R{prefix}W{suffix}" if prefix else f"RW{suffix}", (n_out, 4 * n_out + peephole), "f"),
        (f"{prefix}b{suffix}", (4 * n_out,), "f"),
    ]


def inner_layer(obj: object) -> tuple[str, Mapping[str, Any]] | None:
    """(type name, body) of a nested layer object (a wrapper's ``fwd``/``underlying``) in either
    JSON dialect, or None if ``obj`` is not a layer object."""
    if not isinstance(obj, dict):
        return None
    class_name = obj.get("@class")
    if isinstance(class_name, str):
        return layer_type_name(class_name), obj
    if len(obj) == 1:
        key, body = next(iter(obj.items()))
        if isinstance(body, dict):
            return layer_type_name(key), body
    return None


def _nested_layout(obj: object, prefix: str = "") -> list[ParamLayout] | None:
    inner = inner_layer(obj)
    layout = None if inner is None else param_layout(*inner)
    return None if layout is None else [(prefix + n, s, o) for n, s, o in layout]


#: Wrappers whose parameters are exactly those of the wrapped ``underlying`` layer.
_WRAPPERS = frozenset({"LastTimeStep", "MaskZeroLayer", "TimeDistributed"})


def _distribution_size(dist: object, n_in: int) -> int | None:
    """``ReconstructionDistribution.distributionInputSize(nIn)``: parameters per input value."""
    inner = inner_layer(dist)
    if inner is None:
        return None
    name, body = inner
    if "composite" in name.lower():
        sizes, parts = body.get("distributionSizes"), body.get("reconstructionDistributions")
        if not isinstance(sizes, list) or not isinstance(parts, list) or len(sizes) != len(parts):
            return None
        total = 0
        for size, part in zip(sizes, parts, strict=True):
            one = _distribution_size(part, size) if isinstance(size, int) else None
            if one is None:
                return None
            total += one
        return total
    return 2 * n_in if "gaussian" in name.lower() else n_in


def _sizes(value: object) -> list[int] | None:
    if isinstance(value, list) and value and all(_is_size(n) for n in value):
        return [int(n) for n in value]
    return None


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _vae(conf: Mapping[str, Any], n_in: int, n_out: int) -> list[ParamLayout] | None:
    """``VariationalAutoencoderParamInitializer``: encoder, p(z|x) mean and log-variance,
    decoder, then p(x|z) (its size set by the reconstruction distribution)."""
    encoder, decoder = _sizes(conf.get("encoderLayerSizes")), _sizes(conf.get("decoderLayerSizes"))
    n_dist = _distribution_size(conf.get("outputDistribution"), n_in)
    if encoder is None or decoder is None or n_dist is None:
        return None
    layout: list[ParamLayout] = []

    def dense(name: str, fan_in: int, fan_out: int) -> None:
        layout.extend([(f"{name}W", (fan_in, fan_out), "f"), (f"{name}b", (fan_out,), "c")])

    for i, size in enumerate(encoder):
        dense(f"e{i}", n_in if i == 0 else encoder[i - 1], size)
    dense("pZXMean", encoder[-1], n_out)
    dense("pZXLogStd2", encoder[-1], n_out)
    for i, size in enumerate(decoder):
        dense(f"d{i}", n_out if i == 0 else decoder[i - 1], size)
    dense("pXZ", decoder[-1], n_dist)
    return layout


# One branch per DL4J layer family, in the order of DL4J's ParamInitializers: a lookup table
# would still need the per-family shape arithmetic each branch holds.
def param_layout(type_name: str, conf: Mapping[str, Any]) -> list[ParamLayout] | None:  # noqa: PLR0912
    """The parameters of a built-in layer in storage order, or None if the type is unknown."""
    if type_name in _NO_PARAMS:
        return []
    if type_name in _WRAPPERS:
        return _nested_layout(conf.get("underlying"))
    if type_name == "Bidirectional":  # BidirectionalParamInitializer: forward copy, then backward
        forward, backward = (
            _nested_layout(conf.get("fwd"), "f"),
            _nested_layout(conf.get("bwd"), "b"),
        )
        return None if forward is None or backward is None else forward + backward
    n_in, n_out = _int(conf, "nin", "nIn"), _int(conf, "nout", "nOut")
    has_bias = conf.get("hasBias", True) is not False
    bias: list[ParamLayout] = [("b", (n_out or 0,), "c")] if has_bias else []
    if n_in is None or n_out is None or n_in < 0 or n_out < 0:
        return None
    if type_name in _DEFAULT:
        return [("W", (n_in, n_out), "f"), *bias]
    if type_name in ("AutoEncoder", "RBM"):
        return [("W", (n_in, n_out), "f"), ("b", (n_out,), "c"), ("vb", (n_in,), "c")]
    if type_name == "GravesLSTM":
        return _lstm("", "", n_in, n_out, 3)
    if type_name == "LSTM":
        return _lstm("", "", n_in, n_out, 0)
    if type_name == "GravesBidirectionalLSTM":
        return [
            ("WF", (n_in, 4 * n_out), "f"),
            ("RWF", (n_out, 4 * n_out + 3), "f"),
            ("bF", (4 * n_out,), "f"),
            ("WB", (n_in, 4 * n_out), "f"),
            ("RWB", (n_out, 4 * n_out + 3), "f"),
            ("bB", (4 * n_out,), "f"),
        ]
    if type_name == "VariationalAutoencoder":
        return _vae(conf, n_in, n_out)
    if type_name == "SimpleRnn":
        gains: list[ParamLayout] = (
            [("gx", (n_out,), "c"), ("gr", (n_out,), "c")]
            if conf.get("hasLayerNorm") is True
            else []
        )
        return [("W", (n_in, n_out), "f"), ("RW", (n_out, n_out), "f"), *bias, *gains]
    if type_name == "BatchNormalization":
        names = [] if conf.get("lockGammaBeta") is True else ["gamma", "beta"]
        names += ["mean", "log10stdev" if conf.get("useLogStd") is True else "var"]
        return [(n, (n_out,), "c") for n in names]
    if type_name in ("ConvolutionLayer", "Convolution1DLayer", "Convolution1D", "Convolution2D"):
        kernel = _kernel(conf, 2)
        return None if kernel is None else [*bias, ("W", (n_out, n_in, *kernel), "c")]
    if type_name == "Convolution3D":
        kernel = _kernel(conf, 3)
        return None if kernel is None else [*bias, ("W", (n_out, n_in, *kernel), "c")]
    if type_name == "Deconvolution2D":
        kernel = _kernel(conf, 2)
        return None if kernel is None else [*bias, ("W", (n_in, n_out, *kernel), "c")]
    if type_name in ("SeparableConvolution2D", "DepthwiseConvolution2D"):
        kernel = _kernel(conf, 2)
        multiplier = _int(conf, "depthMultiplier")
        if kernel is None or multiplier is None or multiplier < 1:
            return None
        if type_name == "DepthwiseConvolution2D":
            dw_bias: list[ParamLayout] = [("b", (n_in * multiplier,), "c")] if has_bias else []
            return [*dw_bias, ("W", (*kernel, n_in, multiplier), "c")]
        return [
            *bias,
            ("W", (multiplier, n_in, *kernel), "c"),
            ("pW", (n_out, n_in * multiplier, 1, 1), "c"),
        ]
    return None


def inferred_layout(conf: Mapping[str, Any], variables: object) -> list[ParamLayout] | None:
    """A layout for an unknown layer type, only where it is unambiguous.

    An empty ``variables`` list means no parameters; exactly ``["W", "b"]`` with ``nIn`` and
    ``nOut`` is DL4J's default feed-forward layout (what custom layers extending
    ``FeedForwardLayer`` use).
    """
    if variables == []:
        return []
    n_in, n_out = _int(conf, "nin", "nIn"), _int(conf, "nout", "nOut")
    if variables == ["W", "b"] and n_in is not None and n_out is not None and min(n_in, n_out) >= 0:
        return [("W", (n_in, n_out), "f"), ("b", (n_out,), "c")]
    return None


def layout_size(layout: list[ParamLayout]) -> int:
    """Total number of parameters of a layout."""
    return sum(math.prod(shape) for _, shape, _ in layout)


# -- the parsed layer and vertex (plain data; kept here so converters need not import the
# loader module, whose networks import the converters) ----------------------------------------


@attrs.frozen(kw_only=True)
class Dl4jLayer:
    """One layer: its type, configuration and (when its layout is known) parameter shapes."""

    name: str  # DL4J's param-table prefix: the layer index (MLN) or vertex name (CG)
    layer_name: str | None  # the configured "layerName", if any
    type: str  # simple class name, e.g. "DenseLayer" (or the unknown wrapper key)
    class_name: str | None  # the 1.0+ "@class" value; None in the pre-1.0 dialect
    config: Mapping[str, Any] = attrs.field(eq=False, repr=False)
    n_in: int | None = None
    n_out: int | None = None
    #: (name, shape, order) of each parameter in storage order; None if the type is unknown.
    param_layout: tuple[ParamLayout, ...] | None = None
    #: True when the layout was inferred for an unknown type (see ``inferred_layout``).
    layout_inferred: bool = False

    @property
    def param_count(self) -> int | None:
        """Number of parameters, or None if the layout is unknown."""
        return None if self.param_layout is None else layout_size(list(self.param_layout))


@attrs.frozen(kw_only=True)
class Dl4jVertex:
    """One ComputationGraph vertex: a layer or another vertex type (merge, subset, ...)."""

    name: str
    type: str
    class_name: str | None
    inputs: tuple[str, ...]
    layer: Dl4jLayer | None = None
    config: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
