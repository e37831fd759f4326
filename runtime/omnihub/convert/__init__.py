"""Conversion of DL4J and SameDiff models to ONNX, and the custom-layer registry.

ONNX is the one executable form of every model: ``net.to_onnx()`` builds an
``onnx.ModelProto`` and ``net.output(x)`` runs it with onnxruntime (``omnihub[run]``), falling
back to ``onnx.reference`` with a warning. Nothing here is imported when a model is merely
loaded; onnx, onnxruntime and numpy are imported inside the functions that need them.

How to add a converter
======================

*A DL4J layer* (built-in or your own class): write one function
``(ctx: LayerContext, x: Activations) -> Activations`` and register it::

    from omnihub.convert import Activations, LayerContext, register_layer

    def my_layer(ctx: LayerContext, x: Activations) -> Activations:
        z = ctx.dense(x.name)                       # x @ W + b, W/b from the layer's params
        return ctx.ff(ctx.activation(z))            # the configured activationFn, [N, nOut]

    register_layer("com.example.MyLayer", my_layer)  # the layer's "@class" (or simple name)

``ctx.b`` is the :class:`OnnxBuilder` (``node``, ``initializer``, ``constant``, ``scalar``);
``ctx.config`` the layer's JSON; ``ctx.params`` its parameter arrays by DL4J key (``"W"``,
``"b"``, ... -- read-only views in the file's dtype: pass them to ``ctx.weight(key, array)``,
which copies them once into the model); ``ctx.activation(value, key)`` applies any DL4J
activation stored under ``key``. ``x.kind`` is ``"FF"`` ``[N, F]``, ``"CNN"`` ``[N, C, H, W]``
(or NHWC, see ``x.layout``), ``"CNN3D"`` or ``"RNN"`` ``[N, C, T]`` (or NWC). Raise
:class:`Unsupported` for a configuration you cannot express: the driver collects every such
problem in the model and raises one ``LoadError`` listing them all.

Packages can ship converters without code running at import: declare an entry point in the
``omnihub.layers`` group, named by the layer class, whose value is the function::

    [project.entry-points."omnihub.layers"]
    "com.example.MyLayer" = "my_package.onnx:my_layer"

Built-in converters live in ``_dl4j_ff.py``, ``_dl4j_cnn.py``, ``_dl4j_rnn.py`` (one function
per layer type, registered with the :func:`~omnihub.convert.dl4j.layer_converter` decorator
and the kind of input they take); ComputationGraph vertices in ``_dl4j_graph.py``; SameDiff
ops in ``_samediff_ops.py``. All use the same builder, activations (``_activations.py``) and
``Unsupported`` error, and the project's single opset :data:`OPSET`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnihub.convert._activations import ACTIVATIONS, apply_activation, parse_activation
from omnihub.convert._builder import BATCH, OPSET, OnnxBuilder
from omnihub.convert._errors import Unsupported
from omnihub.convert._run import disabled_optimizers
from omnihub.convert.dl4j import (
    ENTRY_POINT_GROUP,
    Activations,
    Kind,
    LayerContext,
    LayerConverter,
    register_layer,
    unregister_layer,
)

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ACTIVATIONS",
    "BATCH",
    "ENTRY_POINT_GROUP",
    "OPSET",
    "Activations",
    "Kind",
    "LayerContext",
    "LayerConverter",
    "OnnxBuilder",
    "Unsupported",
    "apply_activation",
    "disabled_optimizers",
    "parse_activation",
    "register_layer",
    "to_onnx",
    "unregister_layer",
]


def to_onnx(model: object) -> onnx.ModelProto:
    """The ONNX form of a loaded ``MultiLayerNetwork``, ``ComputationGraph`` or
    ``SameDiffGraph`` (TypeError for anything else)."""
    convert = getattr(model, "to_onnx", None)
    if not callable(convert):
        raise TypeError(f"{type(model).__name__} cannot be converted to ONNX")
    result: onnx.ModelProto = convert()
    return result
