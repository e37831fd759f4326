"""The converter for DL4J's ``CustomLayerExample`` layer: the custom-layer guide's example.

``CustomLayer`` (``100b6_regression_test_readme.md``) is a dense layer whose first half of
outputs goes through ``activationFn`` and second half through ``secondActivationFunction``.
It is not built into omnihub: users register converters like this one for their own classes.
"""

from __future__ import annotations

from omnihub.convert import Activations, LayerContext

__all__ = ["CLASS_NAME", "custom_layer"]

CLASS_NAME = "org.deeplearning4j.regressiontest.customlayer100a.CustomLayer"


def custom_layer(ctx: LayerContext, x: Activations) -> Activations:
    """``x @ W + b``, split in halves, one activation per half, concatenated again."""
    z = ctx.dense(x.name)
    n_out = ctx.layer.n_out or 0
    first, second = ctx.split(z, [n_out // 2, n_out - n_out // 2])
    halves = [ctx.activation(first), ctx.activation(second, "secondActivationFunction")]
    return ctx.ff(ctx.concat(halves))
