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

import math
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
        attrs["same"] = True  # padded by _same_pad (ConvTranspose: statically)
    elif mode == "Causal":
        if rank != 1:
            raise Unsupported("convolutionMode Causal is only defined for 1D layers")
        attrs["pads"] = [(kernel[0] - 1) * dil[0], 0]
    else:
        attrs["pads"] = pad + pad
    return attrs


def _same_pad(ctx: LayerContext, value: str, attrs: dict[str, Any], fill: float = 0.0) -> str:
    """Pad ``value`` (channels-first) as DL4J's Same mode does, for any spatial size.

    total = max((ceil(in / s) - 1) * s + k_eff - in, 0) per spatial axis, floor(total / 2)
    before and the rest after (ONNX's SAME_UPPER, computed here because onnxruntime rejects
    SAME with dilation and with kernels smaller than the stride). Removes the ``same`` and,
    for ops without them, ``dilations`` markers from ``attrs``; sets ``pads`` to zeros.
    """
    b = ctx.b
    kernel, stride = attrs["kernel_shape"], attrs["strides"]
    rank = len(kernel)
    dil = attrs.get("dilations", [1] * rank)
    attrs.pop("same")
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil, strict=True)]
    size = b.node("Shape", [value], start=2)
    steps = b.constant(stride)
    out = b.node("Div", [b.node("Add", [size, b.constant([s - 1 for s in stride])]), steps])
    reach = b.node(
        "Add",
        [b.node("Mul", [b.node("Sub", [out, b.constant([1] * rank)]), steps]), b.constant(eff)],
    )
    total = b.node("Max", [b.node("Sub", [reach, size]), b.constant([0] * rank)])
    before = b.node("Div", [total, b.constant([2] * rank)])
    after = b.node("Sub", [total, before])
    zeros = b.constant([0, 0])
    pads = b.node("Concat", [zeros, before, zeros, after], axis=0)
    attrs["pads"] = [0] * (2 * rank)
    return b.node("Pad", [value, pads, b.scalar(fill)], f"{ctx.prefix}_same_pad")


def _windowed(
    ctx: LayerContext, op: str, value: str, attrs: dict[str, Any], fill: float = 0.0, **extra: Any
) -> str:
    """``op`` over ``value`` with ``attrs`` from :func:`_geometry`, Same mode padded first.

    Pooling ops get their explicit padding as a Pad node too (``fill``: -inf for max), so
    no runtime has to handle windows over padding (onnx.reference's MaxPool fails on some).
    """
    attrs = dict(attrs)
    inputs = extra.pop("inputs", [])
    simple = all(d == 1 for d in attrs.get("dilations", [])) and all(
        k >= s for k, s in zip(attrs["kernel_shape"], attrs["strides"], strict=True)
    )
    if attrs.get("same") and op == "Conv" and simple:
        # ONNX's SAME_UPPER is DL4J's rule; onnxruntime runs it without a Pad node as long as
        # there is no dilation and the kernel is at least the stride (padding never < 0).
        del attrs["same"]
        attrs["auto_pad"] = "SAME_UPPER"
    elif attrs.get("same"):
        value = _same_pad(ctx, value, attrs, fill)
    elif op != "Conv" and any(attrs.get("pads", [])):
        pads = attrs["pads"]
        half = len(pads) // 2
        all_axes = [0, 0, *pads[:half], 0, 0, *pads[half:]]
        value = ctx.b.node("Pad", [value, ctx.b.constant(all_axes), ctx.b.scalar(fill)])
        attrs["pads"] = [0] * len(pads)
    return ctx.b.node(op, [value, *inputs], f"{ctx.prefix}_{op.lower()}", **attrs, **extra)


def _cfg_len(ctx: LayerContext, key: str, rank: int) -> int:
    """How many values a config array holds (Conv1D stores ``[k, 1]``)."""
    value = ctx.config.get(key)
    return len(value) if isinstance(value, list) and len(value) >= rank else rank


def _bias(ctx: LayerContext) -> list[str]:
    return [ctx.weight("b")] if ctx.has_param("b") else []


def _conv(ctx: LayerContext, x: Activations, rank: int, weight: npt.NDArray[Any]) -> Activations:
    value, layout = _first(x, ctx)
    inputs = [ctx.weight("W", weight), *_bias(ctx)]
    y = _windowed(ctx, "Conv", value, _geometry(ctx, rank), inputs=inputs)
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
    if attrs.pop("same", False):
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
    inputs = [ctx.weight("W", onnx_w)]
    return _windowed(ctx, "Conv", value, _geometry(ctx, 2), inputs=inputs, group=n_in)


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
    """MAX (padding never wins), AVG (pad in the divisor or not), SUM, PNORM (LpPool)."""
    kind = str(ctx.config.get("poolingType", "MAX")).upper()
    value, layout = _first(x, ctx)
    if kind == "MAX":
        y = _windowed(ctx, "MaxPool", value, _geometry(ctx, rank), fill=-math.inf)
    elif kind == "PNORM":
        p = ctx.config_int("pnorm")
        if p < 1:
            raise Unsupported(f"PNORM pooling with pnorm={p}")
        y = _windowed(ctx, "LpPool", value, _geometry(ctx, rank), p=p)
    elif kind in ("AVG", "SUM"):
        attrs = _geometry(ctx, rank, dilation=False)
        # Zero padding counted in the divisor gives sum / window; SUM multiplies it back.
        y = _windowed(ctx, "AveragePool", value, attrs, count_include_pad=1)
        if kind == "SUM":
            y = ctx.b.node("Mul", [y, ctx.b.scalar(float(math.prod(attrs["kernel_shape"])))])
        elif ctx.config.get("avgPoolIncludePadInDivisor") is not True and (
            attrs.get("same") or any(attrs.get("pads", []))
        ):
            # divide by the number of real (unpadded) positions in each window
            ones = ctx.b.node("Expand", [ctx.b.scalar(1.0), ctx.b.node("Shape", [value])])
            count = _windowed(ctx, "AveragePool", ones, attrs, count_include_pad=1)
            y = ctx.b.node("Div", [y, count])
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


def zero_padding(ctx: LayerContext, x: Activations) -> Activations:
    """Pad with zeros: DL4J's ``[top, bottom, left, right]`` (1D: ``[left, right]``)."""
    axes = _spatial_axes(x)
    amounts = _pad_amounts(ctx, "padding", len(axes))
    begin, end = [0] * _rank_of(x), [0] * _rank_of(x)
    for axis, (before, after) in zip(axes, amounts, strict=True):
        begin[axis], end[axis] = before, after
    y = ctx.b.node("Pad", [x.name, ctx.b.constant(begin + end)], f"{ctx.prefix}_pad")
    return x.with_name(y)


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
    """``x / (k + alpha * sum_{|c'-c| <= n/2} x_c'^2)^beta`` (DL4J's window: ``n // 2``
    channels on each side).

    The channel-window sum is an AveragePool over the channel axis (moved to a spatial
    position by an Unsqueeze) times the window size, not ONNX's LRN: its window differs for
    even ``n``, and onnx.reference's LRN indexes channels by the batch size.
    """
    n = ctx.config.get("n", 5.0)
    if not isinstance(n, int | float) or isinstance(n, bool):
        raise Unsupported(f"n = {n!r}")
    half = int(n) // 2
    b = ctx.b
    value, layout = _first(x, ctx)
    squares = b.node("Unsqueeze", [b.node("Mul", [value, value]), b.constant([1])])
    window = b.node(
        "AveragePool",
        [squares],
        kernel_shape=[2 * half + 1, 1, 1],
        pads=[half, 0, 0, half, 0, 0],
        count_include_pad=1,
    )
    total = b.node("Squeeze", [window, b.constant([1])])
    alpha = float(ctx.config.get("alpha", 1e-4)) * (2 * half + 1)
    base = b.node(
        "Add", [b.scalar(float(ctx.config.get("k", 2.0))), b.node("Mul", [total, b.scalar(alpha)])]
    )
    scale = b.node("Pow", [base, b.scalar(-float(ctx.config.get("beta", 0.75)))])
    y = b.node("Mul", [value, scale], f"{ctx.prefix}_lrn")
    return _back(ctx, y, x, layout, x.size)


@layer_converter("SpaceToDepthLayer", accepts="CNN")
def space_to_depth(ctx: LayerContext, x: Activations) -> Activations:
    """ONNX SpaceToDepth (channel ``(by * b + bx) * C + c``, TensorFlow's order, which
    libnd4j's space_to_depth follows)."""
    blocks = ctx.config_int("blocks", 2)
    value, layout = _first(x, ctx)
    y = ctx.b.node("SpaceToDepth", [value], f"{ctx.prefix}_space_to_depth", blocksize=blocks)
    return _back(ctx, y, x, layout, None if x.size is None else x.size * blocks * blocks)


for _suffix, _kind in (("1D", "RNN"), ("2D", "CNN"), ("3D", "CNN3D")):
    layer_converter(f"Cropping{_suffix}", accepts=_kind)(cropping)  # type: ignore[arg-type]
    layer_converter(f"Upsampling{_suffix}", accepts=_kind)(upsampling)  # type: ignore[arg-type]
layer_converter("ZeroPaddingLayer", accepts="CNN")(zero_padding)
layer_converter("ZeroPadding1DLayer", accepts="RNN")(zero_padding)
layer_converter("ZeroPadding3DLayer", accepts="CNN3D")(zero_padding)
