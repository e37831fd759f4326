"""SameDiff convolution and normalization ops -> ONNX: conv1d/2d/3d and depthwise (all weight
formats, NC.../N...C, SAME/VALID/CAUSAL), max/avg pooling 2D/3D, upsampling2d, batchnorm, lrn,
standardize, layer_norm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omnihub.convert._errors import Unsupported
from omnihub.convert._samediff_ops import OPS, Converter, OpContext, register

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


@register("upsampling2d")
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


@register("lrn")
def _lrn(cx: OpContext) -> list[str]:
    # tArgs bias, alpha, beta; iArg depth (half window); along the LAST axis (TensorFlow's
    # local_response_normalization): x / (bias + alpha * sum of squares in +-depth) ** beta.
    # ONNX LRN runs along axis 1 with alpha divided by the window size.
    bias, alpha, beta = cx.targ(0, 1.0), cx.targ(1, 1.0), cx.targ(2, 0.5)
    size = 2 * cx.iarg(0, 5) + 1
    channels_first = cx.node("Transpose", cx.ins[:1], perm=[0, 3, 1, 2])
    y = cx.node("LRN", [channels_first], size=size, alpha=alpha * size, beta=beta, bias=bias)
    return [cx.node("Transpose", [y], perm=[0, 2, 3, 1])]


@register("batchnorm")
def _batchnorm(cx: OpContext) -> list[str]:
    # inputs x, mean, variance, [gamma if applyScale], [beta if applyOffset];
    # iArgs applyScale, applyOffset, axes... (default: the last); tArg 0 epsilon
    apply_scale, apply_offset = cx.iarg(0, 0), cx.iarg(1, 0)
    axes = [int(a) for a in cx.op.int_args[2:]] or [-1]
    if len(axes) != 1:
        raise Unsupported(f"batchnorm over several axes {axes}")
    rank = cx.rank(0)

    def along_axis(value: str) -> str:
        return cx.along_axis(value, axes[0], rank)

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


def _standardized(cx: OpContext, axes: list[int]) -> str:
    """libnd4j's standardize: (x - mean) / (biased standard deviation + 1e-12) over ``axes``."""
    if not axes:
        raise Unsupported("standardizing needs at least one axis")
    x, dims = cx.ins[0], cx.ints(axes)
    centered = cx.node("Sub", [x, cx.node("ReduceMean", [x, dims], keepdims=1)])
    variance = cx.node("ReduceMean", [cx.node("Mul", [centered, centered]), dims], keepdims=1)
    std = cx.node("Add", [cx.node("Sqrt", [variance]), cx.scalar(1e-12)])
    return cx.node("Div", [centered, std])


@register("standardize")
def _standardize(cx: OpContext) -> list[str]:
    axes = cx.int_values(1, "axes") if len(cx.ins) > 1 else [int(a) for a in cx.op.int_args]
    return [_standardized(cx, axes)]


@register("layer_norm")
def _layer_norm(cx: OpContext) -> list[str]:
    # inputs x, gain[, bias]; iArgs: the axes to standardize; bArg 0 channels first (default
    # true: gain and bias run along dimension 1, else along the last)
    y = _standardized(cx, [int(a) for a in cx.op.int_args])
    rank = cx.rank(0)
    channel = 1 if cx.barg(0, True) else rank - 1
    y = cx.node("Mul", [y, cx.along_axis(cx.ins[1], channel, rank)])
    if len(cx.ins) > 2:
        y = cx.node("Add", [y, cx.along_axis(cx.ins[2], channel, rank)])
    return [y]
