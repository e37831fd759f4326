"""Feed-forward DL4J layers: Dense, Output, Loss, Activation, Dropout, BatchNormalization.

Dense and Output are ``activation(x @ W + b)`` (``W`` is ``[nIn, nOut]``). Loss layers only
apply their activation (the loss is a training concern). Dropout is the identity at inference.
"""

from __future__ import annotations

from omnihub.convert._errors import Unsupported
from omnihub.convert.dl4j import Activations, LayerContext, layer_converter

__all__: list[str] = []


@layer_converter("DenseLayer", "OutputLayer", accepts="FF")
def dense(ctx: LayerContext, x: Activations) -> Activations:
    """``activation(x @ W + b)``; DenseLayer's ``hasLayerNorm`` is not supported."""
    if ctx.config.get("hasLayerNorm") is True:
        raise Unsupported("DenseLayer with hasLayerNorm=true has no ONNX mapping yet")
    return ctx.ff(ctx.activation(ctx.dense(x.name)))


@layer_converter("LossLayer", accepts="FF")
def loss(ctx: LayerContext, x: Activations) -> Activations:
    """The activation only."""
    return x.with_name(ctx.activation(x.name))


@layer_converter("ActivationLayer", "CnnLossLayer", "Cnn3DLossLayer", "RnnLossLayer")
def activation(ctx: LayerContext, x: Activations) -> Activations:
    """The activation along the channel/feature axis, any kind of input."""
    return x.with_name(ctx.activation(x.name, axis=x.channel_axis))


@layer_converter("DropoutLayer")
def dropout(ctx: LayerContext, x: Activations) -> Activations:
    """Identity: DL4J applies dropout only in training."""
    return x
