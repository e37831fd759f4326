"""The MultiLayerNetwork driver: a DL4J layer stack to one checked ONNX model.

Kept apart from :mod:`omnihub.convert.dl4j` (the registry and the types every layer
converter imports) so that the converters, the preprocessors and this driver import in one
direction: driver -> converters -> registry, never back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported, UnsupportedCollector
from omnihub.convert.dl4j import (
    _REGISTER_HINT,
    Activations,
    Kind,
    LayerContext,
    _Entry,
    _layer_params,
    _lookup,
    describe,
    input_rank,
    input_shape,
    layer_format,
    model_dtype,
)

if TYPE_CHECKING:
    import onnx

    from omnihub.loaders.dl4j import MultiLayerNetwork

__all__ = ["network_to_onnx"]


def _network_input(
    network: MultiLayerNetwork, entries: list[_Entry | None], preprocessors: Mapping[str, Any]
) -> tuple[Kind, int | None, str]:
    """(kind, size, layout) of the network's input: the kind and layout of the first layer
    that takes a definite kind (or the preprocessor at layer 0); the size from the first
    ``nIn`` before the kind changes (pooling, padding... keep the channel count)."""
    from omnihub.convert._dl4j_rnn import NETWORK_INPUTS
    from omnihub.convert._preprocessors import preprocessor_input

    first = network.layers[0].type if network.layers else ""
    if "0" not in preprocessors and first in NETWORK_INPUTS:  # indices, not nIn features
        return NETWORK_INPUTS[first]
    if "0" in preprocessors:
        found = preprocessor_input(preprocessors["0"])
        if found is not None:  # RnnToFeedForward/FeedForwardToRnn keep the size: layer 0's
            return found[0], found[1] or network.layers[0].n_in or None, found[2]
    kind: Kind | None = None
    layout, size = "NC", None
    for index, (layer, entry) in enumerate(zip(network.layers, entries, strict=True)):
        if index and str(index) in preprocessors:  # e.g. CnnToFeedForward(numChannels)
            found = preprocessor_input(preprocessors[str(index)])
            if found is not None and kind in (None, found[0]):
                kind, layout = found[0], found[2]
                size = size or found[1]
            break
        accepts = None if entry is None else entry.accepts
        if accepts is not None and kind is None:
            kind, layout = accepts, layer_format(layer, accepts)
        elif accepts is not None and accepts != kind:
            break
        size = size or layer.n_in or None
        if kind is not None and size is not None:
            break
    return kind or "FF", size, layout if kind else "NC"


def network_to_onnx(network: MultiLayerNetwork) -> onnx.ModelProto:
    """Convert a MultiLayerNetwork: input ``"input"``, output ``"output"``, batch dynamic."""
    from omnihub.convert._builder import BATCH, OnnxBuilder
    from omnihub.convert._preprocessors import adapt, apply_preprocessor

    what = str(network.path)
    problems = UnsupportedCollector(what, _REGISTER_HINT)
    entries = [_lookup(layer) for layer in network.layers]
    for layer, entry in zip(network.layers, entries, strict=True):
        if entry is None:
            problems.add(describe(layer), "no converter for this layer type")
    params = _layer_params(network, problems)
    problems.raise_if_any()

    raw_pre = network.configuration.get("inputPreProcessors") or {}
    preprocessors = raw_pre if isinstance(raw_pre, Mapping) else {}
    b = OnnxBuilder("dl4j_multilayernetwork", model_dtype(network))
    kind, size, layout = _network_input(network, entries, preprocessors)
    x = Activations(b.input("input", None, input_shape(kind, size, layout)), kind, size, layout)
    batch_value: list[str] = []

    def batch() -> str:
        if not batch_value:
            shape = b.node("Shape", ["input"], "input_shape", start=0, end=1)
            batch_value.append(shape)
        return batch_value[0]

    for layer, entry in zip(network.layers, entries, strict=True):
        assert entry is not None
        ctx = LayerContext(b, layer, params.get(layer.name, {}), batch)
        try:
            pre = preprocessors.get(layer.name)
            if pre is not None:
                x = apply_preprocessor(ctx, pre, x)
            elif entry.accepts is not None:
                x = adapt(ctx, x, entry.accepts, layer_format(layer, entry.accepts))
            x = entry.convert(ctx, x)
        except Unsupported as exc:
            problems.add(describe(layer), str(exc))
    problems.raise_if_any()
    b.output(x.name, "output", shape=[BATCH, *([None] * (len(input_rank(x)) - 1))])
    return b.build()
