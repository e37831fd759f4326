"""DL4J's input preprocessors, with DL4J's exact element orders, and the implicit ones.

DL4J writes the preprocessors that ``setInputType`` inferred into ``inputPreProcessors``
(keyed by layer index); :func:`apply_preprocessor` converts those. When a layer receives a
kind of activations it does not take and no preprocessor is configured, :func:`adapt` inserts
the one DL4J would (CNN->FF, RNN->FF, FF->RNN, CNN->RNN) and fixes the layout (NHWC<->NCHW,
NWC<->NCW).

Orders (from DL4J's ``preProcess``):

* CnnToFeedForward: a C-order reshape ``[N, C*H*W]`` of the array as it is (NCHW or NHWC).
* FeedForwardToCnn: the inverse, ``[N, C, H, W]`` (``[N, H, W, C]`` for NHWC).
* RnnToFeedForward: ``[N, F, T] -> [N*T, F]`` with rows time-major (row ``t*N + n``).
* FeedForwardToRnn: the inverse (needs the minibatch size, taken from the network input).
* CnnToRnn: CnnToFeedForward then FeedForwardToRnn.  RnnToCnn: the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported
from omnihub.convert.dl4j import Activations, Kind

if TYPE_CHECKING:
    from omnihub.convert.dl4j import LayerContext

__all__ = ["adapt", "apply_preprocessor", "preprocessor_input", "to_layout"]

_PERMS = {
    ("NHWC", "NCHW"): [0, 3, 1, 2],
    ("NCHW", "NHWC"): [0, 2, 3, 1],
    ("NWC", "NCW"): [0, 2, 1],
    ("NCW", "NWC"): [0, 2, 1],
    ("NDHWC", "NCDHW"): [0, 4, 1, 2, 3],
    ("NCDHW", "NDHWC"): [0, 2, 3, 4, 1],
}


def _name(pre: object) -> tuple[str, Mapping[str, Any]]:
    """(lower-case simple name without 'PreProcessor', body) in either JSON dialect."""
    if isinstance(pre, Mapping):
        cls = pre.get("@class")
        if isinstance(cls, str):
            name, body = cls.rsplit(".", 1)[-1], pre
        elif len(pre) == 1 and isinstance(next(iter(pre.values())), Mapping):
            name, body = next(iter(pre.items()))
        else:
            raise Unsupported(f"preprocessor {pre!r} is not in a known DL4J form")
        low = str(name).lower()
        for suffix in ("preprocessor", "inputpreprocessor"):
            low = low.removesuffix(suffix)
        return low, body
    raise Unsupported(f"preprocessor {pre!r} is not in a known DL4J form")


def _int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unsupported(f"preprocessor setting {key!r} is {value!r}, expected a size")
    return value


def _cnn_format(body: Mapping[str, Any]) -> str:
    value = body.get("format", body.get("cnn2dDataFormat"))
    return str(value).upper() if isinstance(value, str) else "NCHW"


def _rnn_format(body: Mapping[str, Any]) -> str:
    value = body.get("rnnDataFormat")
    return str(value).upper() if isinstance(value, str) else "NCW"


def preprocessor_input(pre: object) -> tuple[Kind, int | None, str] | None:
    """(kind, size, layout) a preprocessor at layer 0 expects as the network input."""
    try:
        name, body = _name(pre)
    except Unsupported:
        return None
    if name in ("feedforwardtocnn", "feedforwardtocnn3d"):
        dims: tuple[str, ...] = ("inputHeight", "inputWidth", "numChannels")
        if name.endswith("3d"):
            dims = ("inputDepth", "inputHeight", "inputWidth", "numChannels")
        size: int | None = 1
        for key in dims:
            size = (size or 1) * _int(body, key)
        return "FF", size, "NC"
    if name in ("feedforwardtornn",):
        return "FF", None, "NC"
    if name == "rnntocnn":
        size = _int(body, "inputHeight") * _int(body, "inputWidth") * _int(body, "numChannels")
        return "RNN", size, _rnn_format(body)
    if name == "rnntofeedforward":
        return "RNN", None, _rnn_format(body)
    if name in ("cnntofeedforward", "cnntornn"):
        channels = body.get("numChannels")
        size = channels if isinstance(channels, int) and channels > 0 else None
        return "CNN", size, _cnn_format(body)
    return None


def to_layout(ctx: LayerContext, x: Activations, layout: str) -> Activations:
    """``x`` transposed to ``layout`` (unchanged if it already is)."""
    perm = _PERMS.get((x.layout, layout))
    if perm is None:
        return x
    return Activations(ctx.b.node("Transpose", [x.name], perm=perm), x.kind, x.size, layout)


def _flatten(ctx: LayerContext, x: Activations) -> Activations:
    return Activations(ctx.b.node("Flatten", [x.name], axis=1), "FF", None, "NC")


def _rnn_to_ff(ctx: LayerContext, x: Activations) -> Activations:
    """[N, F, T] (or NWC) -> [T*N, F], rows time-major."""
    b = ctx.b
    perm = [1, 0, 2] if x.layout == "NWC" else [2, 0, 1]
    time_major = b.node("Transpose", [x.name], perm=perm)
    if x.size:
        rows = b.node("Reshape", [time_major, b.constant([-1, x.size])])
    else:  # size unknown: keep the last axis as it is
        last = b.node("Shape", [time_major], start=2)
        rows = b.node("Reshape", [time_major, b.node("Concat", [b.constant([-1]), last], axis=0)])
    return Activations(rows, "FF", x.size, "NC")


def _ff_to_rnn(ctx: LayerContext, x: Activations, layout: str) -> Activations:
    """[T*N, F] (rows time-major) -> [N, F, T] (or [N, T, F] for NWC)."""
    b = ctx.b
    size = b.constant([x.size]) if x.size else b.node("Shape", [x.name], start=1)
    shape = b.node("Concat", [b.constant([-1]), ctx.batch_size(), size], axis=0)
    time_major = b.node("Reshape", [x.name, shape])  # [T, N, F]
    perm = [1, 0, 2] if layout == "NWC" else [1, 2, 0]
    return Activations(b.node("Transpose", [time_major], perm=perm), "RNN", x.size, layout)


def _ff_to_cnn(
    ctx: LayerContext, x: Activations, hwc: tuple[int, int, int], fmt: str
) -> Activations:
    h, w, c = hwc
    dims = [-1, h, w, c] if fmt == "NHWC" else [-1, c, h, w]
    return Activations(ctx.b.node("Reshape", [x.name, ctx.b.constant(dims)]), "CNN", c, fmt)


def apply_preprocessor(ctx: LayerContext, pre: object, x: Activations) -> Activations:
    """Apply one configured ``inputPreProcessors`` entry to ``x``."""
    name, body = _name(pre)
    if name == "cnntofeedforward":
        return _flatten(ctx, x) if x.kind == "CNN" else x
    if name == "cnn3dtofeedforward":
        return _flatten(ctx, x) if x.kind == "CNN3D" else x
    if name == "feedforwardtocnn":
        fmt = _cnn_format(body)
        h, w, c = _int(body, "inputHeight"), _int(body, "inputWidth"), _int(body, "numChannels")
        if x.kind == "CNN":
            return to_layout(ctx, x, fmt)
        return _ff_to_cnn(ctx, x, (h, w, c), fmt)
    if name == "feedforwardtocnn3d":
        d, h, w = _int(body, "inputDepth"), _int(body, "inputHeight"), _int(body, "inputWidth")
        c = _int(body, "numChannels")
        ncdhw = body.get("isNCDHW", True) is not False
        dims = [-1, c, d, h, w] if ncdhw else [-1, d, h, w, c]
        out = ctx.b.node("Reshape", [x.name, ctx.b.constant(dims)])
        return Activations(out, "CNN3D", c, "NCDHW" if ncdhw else "NDHWC")
    if name == "rnntofeedforward":
        return _rnn_to_ff(ctx, x) if x.kind == "RNN" else x
    if name == "feedforwardtornn":
        return _ff_to_rnn(ctx, x, _rnn_format(body)) if x.kind == "FF" else x
    if name == "cnntornn":
        flat = _flatten(ctx, to_layout(ctx, x, "NCHW") if x.layout == "NHWC" else x)
        return _ff_to_rnn(ctx, flat, _rnn_format(body))
    if name == "rnntocnn":
        h, w, c = _int(body, "inputHeight"), _int(body, "inputWidth"), _int(body, "numChannels")
        return _ff_to_cnn(ctx, _rnn_to_ff(ctx, x), (h, w, c), _cnn_format(body))
    if name == "composableinput":
        processors = body.get("inputPreProcessors")
        if not isinstance(processors, list):
            raise Unsupported("ComposableInputPreProcessor without a list of preprocessors")
        for inner in processors:
            x = apply_preprocessor(ctx, inner, x)
        return x
    raise Unsupported(f"input preprocessor {name!r} has no ONNX mapping")


def adapt(ctx: LayerContext, x: Activations, accepts: Kind, layout: str) -> Activations:
    """Make ``x`` what a layer taking ``accepts`` in ``layout`` expects (DL4J's implicit
    preprocessors), or Unsupported if DL4J could not either."""
    if x.kind == accepts:
        return to_layout(ctx, x, layout)
    if accepts == "FF":
        if x.kind in ("CNN", "CNN3D"):
            return _flatten(ctx, x)
        if x.kind == "RNN":
            return _rnn_to_ff(ctx, x)
    if accepts == "RNN":
        if x.kind == "FF":
            return _ff_to_rnn(ctx, x, layout)
        if x.kind == "CNN":
            return _ff_to_rnn(ctx, _flatten(ctx, to_layout(ctx, x, "NCHW")), layout)
    raise Unsupported(
        f"takes {accepts} input but receives {x.kind} activations and no input preprocessor "
        "is configured"
    )
