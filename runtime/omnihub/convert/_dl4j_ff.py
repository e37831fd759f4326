"""Feed-forward DL4J layers: Dense, Output, Loss, Activation, Dropout, BatchNormalization.

Dense and Output are ``activation(x @ W + b)`` (``W`` is ``[nIn, nOut]``). Loss layers only
apply their activation (the loss is a training concern). Dropout is the identity at inference.
"""

from __future__ import annotations

from omnihub.convert._errors import Unsupported
from omnihub.convert.dl4j import Activations, LayerContext, layer_converter

__all__: list[str] = []


@layer_converter("DenseLayer", "OutputLayer", "AutoEncoder", accepts="FF")
def dense(ctx: LayerContext, x: Activations) -> Activations:
    """``activation(x @ W + b)``; DenseLayer's ``hasLayerNorm`` is not supported. An
    AutoEncoder in a network outputs its encoding, the same (its corruption is training-only;
    ``vb`` is the decoder's)."""
    if ctx.config.get("hasLayerNorm") is True:
        raise Unsupported("DenseLayer with hasLayerNorm=true has no ONNX mapping yet")
    return ctx.ff(ctx.activation(ctx.dense(x.name)))


@layer_converter("LossLayer", accepts="FF")
def loss(ctx: LayerContext, x: Activations) -> Activations:
    """The activation only."""
    return x.with_name(ctx.activation(x.name))


@layer_converter("ActivationLayer")
def activation(ctx: LayerContext, x: Activations) -> Activations:
    """The activation along the channel/feature axis, any kind of input."""
    return x.with_name(ctx.activation(x.name, axis=x.channel_axis))


layer_converter("CnnLossLayer", accepts="CNN")(activation)
layer_converter("Cnn3DLossLayer", accepts="CNN3D")(activation)
layer_converter("RnnLossLayer", accepts="RNN")(activation)


@layer_converter("DropoutLayer", "MaskLayer")
def dropout(ctx: LayerContext, x: Activations) -> Activations:
    """Identity: DL4J applies dropout only in training; MaskLayer only applies a mask array,
    which ``output(x)`` never has."""
    return x


@layer_converter("BatchNormalization")
def batch_normalization(ctx: LayerContext, x: Activations) -> Activations:
    """ONNX BatchNormalization with the global mean and variance (channels-first).

    ``useLogStd`` stores ``log10(std)``: the variance is ``10^(2 * log10std)``. With
    ``lockGammaBeta`` gamma and beta are the configured constants. The standard deviation is
    ``sqrt(var + eps)`` as in DL4J 1.0 (some pre-1.0 CPU paths omitted ``eps`` at inference).
    """
    import numpy as np

    from omnihub.convert._preprocessors import to_layout

    b = ctx.b
    if ctx.has_param("log10stdev"):
        log_std = ctx.weight("log10stdev")
        var = b.node("Pow", [b.scalar(10.0), b.node("Mul", [log_std, b.scalar(2.0)])])
    else:
        var = ctx.weight("var")
    mean = ctx.weight("mean")
    if ctx.has_param("gamma"):
        gamma, beta = ctx.weight("gamma"), ctx.weight("beta")
    else:
        n = int(ctx.params["mean"].shape[0])
        gamma = b.constant(np.full(n, float(ctx.config.get("gamma", 1.0)), b.dtype))
        beta = b.constant(np.full(n, float(ctx.config.get("beta", 0.0)), b.dtype))
    first = {"CNN": "NCHW", "RNN": "NCW", "CNN3D": "NCDHW"}.get(x.kind, x.layout)
    value = to_layout(ctx, x, first)
    y = b.node(
        "BatchNormalization",
        [value.name, gamma, beta, mean, var],
        f"{ctx.prefix}_bn",
        epsilon=float(ctx.config.get("eps", 1e-5)),
    )
    y = ctx.activation(y)
    return to_layout(ctx, value.with_name(y), x.layout)
