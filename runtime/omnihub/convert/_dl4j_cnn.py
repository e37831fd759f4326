"""Convolutional DL4J layers (1D, 2D, 3D): convolution, pooling, padding, cropping, upsampling.

Shapes follow DL4J's ``ConvolutionMode``:

* ``Truncate`` / ``Strict``: explicit symmetric ``padding``, output ``floor((in + 2p - k_eff)
  / s) + 1`` (Strict only adds a build-time divisibility check in DL4J).
* ``Same``: output ``ceil(in / s)``; DL4J pads ``floor(total / 2)`` before and the rest after
  (``ConvolutionUtils.getSameModeTopLeftPadding``), which is ONNX's ``SAME_UPPER``.
* ``Causal`` (1D): ``(k - 1) * d`` zeros before, none after.

Weights are read in DL4J's layouts and handed to ONNX as (strided) views, copied once:
Conv ``[nOut, nIn, kH, kW]`` as is; Conv1D ``[nOut, nIn, k, 1]`` -> ``[nOut, nIn, k]``;
Depthwise ``[kH, kW, nIn, m]`` and Separable's depthwise ``[m, nIn, kH, kW]`` ->
``[nIn*m, 1, kH, kW]`` with output channel ``c*m + j`` (libnd4j's order), ``group = nIn``;
Deconvolution2D ``[nIn, nOut, kH, kW]`` is ONNX ConvTranspose's layout.

NHWC (``cnn2dDataFormat``) and NWC (``rnnDataFormat``) inputs are transposed to channels-first
around the ONNX op and back, so the output keeps the layer's format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported
from omnihub.convert._preprocessors import to_layout
from omnihub.convert.dl4j import Activations, LayerContext, layer_converter

if TYPE_CHECKING:
    import numpy.typing as npt

__all__: list[str] = []

_CHANNELS_FIRST = {"CNN": "NCHW", "RNN": "NCW", "CNN3D": "NCDHW"}
_INT64_MAX = 2**63 - 1


def _first(x: Activations, ctx: LayerContext) -> tuple[str, str]:
    """(channels-first value, original layout) of ``x``."""
    layout = x.layout
    return to_layout(ctx, x, _CHANNELS_FIRST[x.kind]).name, layout


def _back(
    ctx: LayerContext, value: str, x: Activations, layout: str, size: int | None
) -> Activations:
    """Wrap a channels-first result as ``x``'s kind in ``layout``."""
    out = Activations(value, x.kind, size, _CHANNELS_FIRST[x.kind])
    return to_layout(ctx, out, layout)


def _mode(ctx: LayerContext) -> str:
    mode = ctx.config.get("convolutionMode", "Truncate")
    if mode not in ("Truncate", "Same", "Strict", "Causal"):
        raise Unsupported(f"convolutionMode {mode!r}")
    return str(mode)


def _geometry(ctx: LayerContext, rank: int, *, dilation: bool = True) -> dict[str, Any]:
    """ONNX attributes for kernel/stride/dilation/padding of a ``rank``-D window op."""
    kernel = ctx.config_ints("kernelSize", _cfg_len(ctx, "kernelSize", rank))[:rank]
    stride = ctx.config_ints("stride", _cfg_len(ctx, "stride", rank), [1] * rank)[:rank]
    pad = ctx.config_ints("padding", _cfg_len(ctx, "padding", rank), [0] * rank)[:rank]
    dil = ctx.config_ints("dilation", _cfg_len(ctx, "dilation", rank), [1] * rank)[:rank]
    attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": stride}
    if dilation:
        attrs["dilations"] = dil
    elif any(d != 1 for d in dil):
        raise Unsupported(f"dilation {dil} for this pooling type")
    mode = _mode(ctx)
    if mode == "Same":
        attrs["auto_pad"] = "SAME_UPPER"
    elif mode == "Causal":
        if rank != 1:
            raise Unsupported("convolutionMode Causal is only defined for 1D layers")
        attrs["pads"] = [(kernel[0] - 1) * dil[0], 0]
    else:
        attrs["pads"] = pad + pad
    return attrs


def _cfg_len(ctx: LayerContext, key: str, rank: int) -> int:
    """How many values a config array holds (Conv1D stores ``[k, 1]``)."""
    value = ctx.config.get(key)
    return len(value) if isinstance(value, list) and len(value) >= rank else rank


def _bias(ctx: LayerContext) -> list[str]:
    return [ctx.weight("b")] if ctx.has_param("b") else []


def _conv(ctx: LayerContext, x: Activations, rank: int, weight: npt.NDArray[Any]) -> Activations:
    value, layout = _first(x, ctx)
    y = ctx.b.node(
        "Conv",
        [value, ctx.weight("W", weight), *_bias(ctx)],
        f"{ctx.prefix}_conv",
        **_geometry(ctx, rank),
    )
    y = ctx.activation(y)
    return _back(ctx, y, x, layout, ctx.layer.n_out)


@layer_converter("ConvolutionLayer", "Convolution2D", accepts="CNN")
def convolution2d(ctx: LayerContext, x: Activations) -> Activations:
    """Conv (W ``[nOut, nIn, kH, kW]``) + bias, then the activation."""
    return _conv(ctx, x, 2, ctx.params["W"])


@layer_converter("Convolution1DLayer", "Convolution1D", accepts="RNN")
def convolution1d(ctx: LayerContext, x: Activations) -> Activations:
    """1D Conv over time (W ``[nOut, nIn, k, 1]`` read as ``[nOut, nIn, k]``)."""
    w = ctx.params["W"]
    return _conv(ctx, x, 1, w.reshape(w.shape[:3]) if w.ndim == 4 else w)


@layer_converter("Convolution3D", accepts="CNN3D")
def convolution3d(ctx: LayerContext, x: Activations) -> Activations:
    """3D Conv (W ``[nOut, nIn, kD, kH, kW]``)."""
    return _conv(ctx, x, 3, ctx.params["W"])


@layer_converter("Deconvolution2D", accepts="CNN")
def deconvolution2d(ctx: LayerContext, x: Activations) -> Activations:
    """ConvTranspose (W ``[nIn, nOut, kH, kW]``); Same mode: output ``in * stride``, DL4J's
    padding ``floor((k_eff - s) / 2)`` before."""
    attrs = _geometry(ctx, 2)
    if attrs.pop("auto_pad", None) == "SAME_UPPER":
        begin, end, extra = [], [], []
        for k, s, d in zip(
            attrs["kernel_shape"], attrs["strides"], attrs["dilations"], strict=True
        ):
            total = (k - 1) * d + 1 - s
            first = int(total / 2)  # Java's integer division truncates toward zero
            begin.append(max(first, 0))
            end.append(max(total - first, 0))
            extra.append(max(-(total - first), 0) + max(-first, 0))
        attrs["pads"] = begin + end
        if any(extra):
            attrs["output_padding"] = extra
    value, layout = _first(x, ctx)
    y = ctx.b.node(
        "ConvTranspose", [value, ctx.weight("W"), *_bias(ctx)], f"{ctx.prefix}_deconv", **attrs
    )
    return _back(ctx, ctx.activation(y), x, layout, ctx.layer.n_out)


def _depthwise(ctx: LayerContext, value: str, weight: npt.NDArray[Any], n_in: int) -> str:
    """Grouped Conv with ``weight`` ``[nIn, m, kH, kW]`` -> ONNX ``[nIn*m, 1, kH, kW]``."""
    onnx_w = weight.reshape(weight.shape[0] * weight.shape[1], 1, *weight.shape[2:])
    return ctx.b.node(
        "Conv",
        [value, ctx.weight("W", onnx_w)],
        f"{ctx.prefix}_depthwise",
        group=n_in,
        **_geometry(ctx, 2),
    )


@layer_converter("DepthwiseConvolution2D", accepts="CNN")
def depthwise_convolution2d(ctx: LayerContext, x: Activations) -> Activations:
    """Depthwise Conv: W ``[kH, kW, nIn, m]``, bias ``[nIn*m]``."""
    w = ctx.params["W"]
    n_in = int(w.shape[2])
    value, layout = _first(x, ctx)
    y = _depthwise(ctx, value, w.transpose(2, 3, 0, 1), n_in)
    if ctx.has_param("b"):
        bias = ctx.b.node("Reshape", [ctx.weight("b"), ctx.b.constant([-1, 1, 1])])
        y = ctx.b.node("Add", [y, bias])
    return _back(ctx, ctx.activation(y), x, layout, n_in * int(w.shape[3]))


@layer_converter("SeparableConvolution2D", accepts="CNN")
def separable_convolution2d(ctx: LayerContext, x: Activations) -> Activations:
    """Depthwise (W ``[m, nIn, kH, kW]``) then pointwise (pW ``[nOut, nIn*m, 1, 1]``) + b."""
    w = ctx.params["W"]
    n_in = int(w.shape[1])
    value, layout = _first(x, ctx)
    depthwise = _depthwise(ctx, value, w.transpose(1, 0, 2, 3), n_in)
    y = ctx.b.node("Conv", [depthwise, ctx.weight("pW"), *_bias(ctx)], f"{ctx.prefix}_pointwise")
    return _back(ctx, ctx.activation(y), x, layout, ctx.layer.n_out)


def _pool(ctx: LayerContext, x: Activations, rank: int) -> Activations:
    kind = str(ctx.config.get("poolingType", "MAX")).upper()
    value, layout = _first(x, ctx)
    if kind == "MAX":
        y = ctx.b.node("MaxPool", [value], f"{ctx.prefix}_maxpool", **_geometry(ctx, rank))
    elif kind in ("AVG", "SUM"):
        attrs = _geometry(ctx, rank, dilation=False)
        include = ctx.config.get("avgPoolIncludePadInDivisor") is True or kind == "SUM"
        y = ctx.b.node(
            "AveragePool", [value], f"{ctx.prefix}_avgpool", count_include_pad=int(include), **attrs
        )
        if kind == "SUM":
            window = 1
            for k in attrs["kernel_shape"]:
                window *= k
            y = ctx.b.node("Mul", [y, ctx.b.scalar(float(window))])
    elif kind == "PNORM":
        p = ctx.config_int("pnorm")
        if p < 1:
            raise Unsupported(f"PNORM pooling with pnorm={p}")
        y = ctx.b.node("LpPool", [value], f"{ctx.prefix}_lppool", p=p, **_geometry(ctx, rank))
    else:
        raise Unsupported(f"poolingType {kind!r}")
    return _back(ctx, y, x, layout, x.size)


@layer_converter("SubsamplingLayer", "Pooling2D", accepts="CNN")
def subsampling2d(ctx: LayerContext, x: Activations) -> Activations:
    """MaxPool / AveragePool / LpPool (SUM = average * window)."""
    return _pool(ctx, x, 2)


@layer_converter("Subsampling1DLayer", "Pooling1D", accepts="RNN")
def subsampling1d(ctx: LayerContext, x: Activations) -> Activations:
    """Pooling over time (DL4J stores ``[k, 1]`` arrays)."""
    return _pool(ctx, x, 1)


@layer_converter("Subsampling3DLayer", accepts="CNN3D")
def subsampling3d(ctx: LayerContext, x: Activations) -> Activations:
    """3D pooling (MAX, AVG)."""
    return _pool(ctx, x, 3)


def _spatial_axes(x: Activations) -> list[int]:
    """The spatial axes of ``x`` in its own layout."""
    rank = {"RNN": 1, "CNN": 2, "CNN3D": 3}[x.kind]
    start = 1 if x.channel_axis == -1 else 2
    return list(range(start, start + rank))


def _rank_of(x: Activations) -> int:
    return {"RNN": 3, "CNN": 4, "CNN3D": 5}[x.kind]


def _pad_amounts(ctx: LayerContext, key: str, rank: int) -> list[tuple[int, int]]:
    """(before, after) per spatial dim from DL4J's padding/cropping array."""
    raw = ctx.config.get(key)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw] * (2 * rank)
    if not isinstance(raw, list) or not all(isinstance(v, int) for v in raw):
        raise Unsupported(f"setting {key!r} is {raw!r}")
    if len(raw) == rank:  # symmetric (ZeroPadding3D / Cropping3D may store one per dim)
        raw = [v for v in raw for _ in range(2)]
    if len(raw) != 2 * rank:
        raise Unsupported(f"setting {key!r} is {raw!r}, expected {2 * rank} values")
    return [(int(raw[2 * i]), int(raw[2 * i + 1])) for i in range(rank)]


@layer_converter("ZeroPaddingLayer", "ZeroPadding1DLayer", "ZeroPadding3DLayer")
def zero_padding(ctx: LayerContext, x: Activations) -> Activations:
    """Pad with zeros: DL4J's ``[top, bottom, left, right]`` (1D: ``[left, right]``)."""
    axes = _spatial_axes(x)
    amounts = _pad_amounts(ctx, "padding", len(axes))
    begin, end = [0] * _rank_of(x), [0] * _rank_of(x)
    for axis, (before, after) in zip(axes, amounts, strict=True):
        begin[axis], end[axis] = before, after
    y = ctx.b.node("Pad", [x.name, ctx.b.constant(begin + end)], f"{ctx.prefix}_pad")
    return x.with_name(y)


@layer_converter("Cropping1D", "Cropping2D", "Cropping3D")
def cropping(ctx: LayerContext, x: Activations) -> Activations:
    """Slice away DL4J's ``[top, bottom, left, right]`` (1D: ``[left, right]``)."""
    axes = _spatial_axes(x)
    amounts = _pad_amounts(ctx, "cropping", len(axes))
    starts = [before for before, _ in amounts]
    ends = [-after if after else _INT64_MAX for _, after in amounts]
    y = ctx.b.node(
        "Slice",
        [x.name, ctx.b.constant(starts), ctx.b.constant(ends), ctx.b.constant(axes)],
        f"{ctx.prefix}_crop",
    )
    return x.with_name(y)


@layer_converter("Upsampling1D", "Upsampling2D", "Upsampling3D")
def upsampling(ctx: LayerContext, x: Activations) -> Activations:
    """Nearest-neighbour repeat of every spatial position ``size`` times.

    Written as Unsqueeze/Expand/Reshape (pure data movement, every dtype) rather than Resize,
    which onnxruntime's CPU provider lacks for DOUBLE and FLOAT16.
    """
    b = ctx.b
    axes = _spatial_axes(x)
    sizes = ctx.config_ints("size", _cfg_len(ctx, "size", len(axes)))[: len(axes)]
    rank = _rank_of(x)
    # [N, C, H, W] -> [N, C, H, 1, W, 1] -> expand -> [N, C, H*sh, W*sw]
    inserted = [a + i + 1 for i, a in enumerate(axes)]
    y = b.node("Unsqueeze", [x.name, b.constant(inserted)])
    repeat = [1] * (rank + len(axes))
    for axis, size in zip(inserted, sizes, strict=True):
        repeat[axis] = size
    target = b.node("Mul", [b.node("Shape", [y]), b.constant(repeat)])
    y = b.node("Expand", [y, target])
    scale = [1] * rank
    for axis, size in zip(axes, sizes, strict=True):
        scale[axis] = size
    out_shape = b.node("Mul", [b.node("Shape", [x.name]), b.constant(scale)])
    return x.with_name(b.node("Reshape", [y, out_shape], f"{ctx.prefix}_upsample"))


@layer_converter("LocalResponseNormalization", accepts="CNN")
def local_response_normalization(ctx: LayerContext, x: Activations) -> Activations:
    """``x / (k + alpha * sum_{|c'-c| <= n/2} x_c'^2)^beta`` -> ONNX LRN with an odd window
    ``2*floor(n/2) + 1`` and ``alpha * window`` (ONNX divides alpha by the size)."""
    n = ctx.config.get("n", 5.0)
    if not isinstance(n, int | float) or isinstance(n, bool):
        raise Unsupported(f"n = {n!r}")
    size = 2 * (int(n) // 2) + 1
    alpha = float(ctx.config.get("alpha", 1e-4))
    value, layout = _first(x, ctx)
    y = ctx.b.node(
        "LRN",
        [value],
        f"{ctx.prefix}_lrn",
        size=size,
        alpha=alpha * size,
        beta=float(ctx.config.get("beta", 0.75)),
        bias=float(ctx.config.get("k", 2.0)),
    )
    return _back(ctx, y, x, layout, x.size)
