"""DL4J ComputationGraph -> ONNX: the graph driver and the graph vertices.

Vertices are converted in DL4J's topological order (the loader's). A ``LayerVertex`` applies
its ``preProcessor`` (else the implicit one, as for a MultiLayerNetwork) and then its layer's
converter (the same registry: built-ins, entry points, ``register_layer``). Other vertices,
with DL4J's semantics (``org.deeplearning4j.nn.graph.vertex.impl``):

==========================  ===================================================================
MergeVertex                 concatenation along ``mergeAxis`` (default: features/channels)
ElementWiseVertex           Add, Subtract (two inputs), Product, Average, Max
SubsetVertex                features/channels ``from..to`` (inclusive) along axis 1
PreprocessorVertex          its ``preProcessor``
ScaleVertex / ShiftVertex   ``x * scaleFactor`` / ``x + shiftFactor``
L2NormalizeVertex           ``x / max(||x||_2, eps)`` over ``dimension`` (default: all but 0)
L2Vertex                    ``||a - b||_2`` per example, ``[N, 1]``
StackVertex                 concatenation along the batch axis
UnstackVertex               batch slice ``from`` of ``stackSize`` equal parts
ReshapeVertex               ``reshape(reshapeOrder, newShape)`` ('c' or 'f' element order)
LastTimeStepVertex          the last time step ``[N, C]`` (masks are not inputs)
DuplicateToTimeSeriesVertex ``[N, C]`` repeated over the time steps of the input ``inputName``
ReverseTimeSeriesVertex     the time axis reversed
PoolHelperVertex            drops the first row and column (``x[:, :, 1:, 1:]``)
==========================  ===================================================================

Graph inputs keep DL4J's names and graph outputs are named after the output vertices; the
batch (and the time or spatial sizes) are dynamic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported, UnsupportedCollector
from omnihub.convert._preprocessors import (
    adapt,
    apply_preprocessor,
    preprocessor_input,
    to_layout,
)
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

    from omnihub.convert._builder import OnnxBuilder
    from omnihub.loaders.dl4j import ComputationGraph, Dl4jVertex

__all__ = ["VERTICES", "graph_to_onnx"]


class VertexContext:
    """What a vertex converter sees: a LayerContext (builder, config, helpers), its input
    activations and every value converted so far (by vertex or input name)."""

    def __init__(
        self, ctx: LayerContext, inputs: list[Activations], values: Mapping[str, Activations]
    ) -> None:
        self.ctx = ctx
        self.b: OnnxBuilder = ctx.b
        self.inputs = inputs
        self.values = values

    def number(self, key: str, default: float) -> float:
        value = self.ctx.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unsupported(f"setting {key!r} is {value!r}, expected a number")
        return float(value)

    def single(self) -> Activations:
        if len(self.inputs) != 1:
            raise Unsupported(f"takes one input, has {len(self.inputs)}")
        return self.inputs[0]


VertexConverter = Callable[[VertexContext], Activations]
VERTICES: dict[str, VertexConverter] = {}


def _vertex(*names: str) -> Callable[[VertexConverter], VertexConverter]:
    def decorate(fn: VertexConverter) -> VertexConverter:
        for name in names:
            VERTICES[name] = fn
        return fn

    return decorate


def _rank(x: Activations) -> int:
    return len(input_rank(x))


def _same_layout(v: VertexContext) -> list[Activations]:
    """The inputs, those of the first one's kind in its layout (NCW/NWC, NCHW/NHWC)."""
    first = v.inputs[0]
    return [to_layout(v.ctx, x, first.layout) if x.kind == first.kind else x for x in v.inputs]


@_vertex("MergeVertex")
def merge(v: VertexContext) -> Activations:
    """Concatenation along ``mergeAxis``; without one, along the features/channels (axis 1,
    or the last axis of NWC/NHWC activations, where DL4J's ``setInputTypes`` puts it)."""
    inputs = _same_layout(v)
    first = inputs[0]
    if len(inputs) == 1:
        return first
    rank = _rank(first)
    axis = int(v.number("mergeAxis", first.channel_axis % rank))
    sizes = [x.size for x in inputs]
    size = sum(s for s in sizes if s is not None) if None not in sizes else None
    if axis % rank != first.channel_axis % rank:
        size = first.size
    return first.with_name(v.b.node("Concat", [x.name for x in inputs], axis=axis), size)


@_vertex("ElementWiseVertex")
def element_wise(v: VertexContext) -> Activations:
    """Add, Subtract, Product, Average or Max of the inputs."""
    op = str(v.ctx.config.get("op", "Add"))
    inputs = _same_layout(v)
    names = [x.name for x in inputs]
    variadic = {"Add": "Sum", "Max": "Max"}
    if op in variadic:
        y = v.b.node(variadic[op], names)
    elif op == "Average":  # DL4J: the sum divided by n (onnxruntime has no DOUBLE Mean)
        y = v.b.node("Div", [v.b.node("Sum", names), v.b.scalar(len(names))])
    elif op == "Product":
        y = names[0]
        for name in names[1:]:
            y = v.b.node("Mul", [y, name])
    elif op == "Subtract" and len(names) == 2:
        y = v.b.node("Sub", names)
    else:
        raise Unsupported(f"ElementWiseVertex op {op!r} with {len(names)} inputs")
    return inputs[0].with_name(y)


@_vertex("SubsetVertex")
def subset(v: VertexContext) -> Activations:
    """Axis-1 entries ``from`` to ``to``, both included."""
    x = v.single()
    start, end = v.ctx.config_int("from"), v.ctx.config_int("to") + 1
    b = v.b
    y = b.node("Slice", [x.name, b.constant([start]), b.constant([end]), b.constant([1])])
    return x.with_name(y, end - start)


@_vertex("PreprocessorVertex")
def preprocessor(v: VertexContext) -> Activations:
    """The vertex's ``preProcessor``."""
    return apply_preprocessor(v.ctx, v.ctx.config.get("preProcessor"), v.single())


@_vertex("ScaleVertex")
def scale(v: VertexContext) -> Activations:
    x = v.single()
    return x.with_name(v.b.node("Mul", [x.name, v.b.scalar(v.number("scaleFactor", 1.0))]))


@_vertex("ShiftVertex")
def shift(v: VertexContext) -> Activations:
    x = v.single()
    return x.with_name(v.b.node("Add", [x.name, v.b.scalar(v.number("shiftFactor", 0.0))]))


def _int_list(v: VertexContext, key: str) -> list[int] | None:
    value = v.ctx.config.get(key)
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    ):
        raise Unsupported(f"setting {key!r} is {value!r}, expected integers")
    return [int(d) for d in value]


@_vertex("L2NormalizeVertex")
def l2_normalize(v: VertexContext) -> Activations:
    """``x / max(||x||_2, eps)``, the norm over ``dimension`` (default: all but the batch)."""
    x = v.single()
    b = v.b
    dims = _int_list(v, "dimension") or list(range(1, _rank(x)))
    norm = b.node("ReduceL2", [x.name, b.constant(dims)], keepdims=1)
    norm = b.node("Max", [norm, b.scalar(v.number("eps", 1e-8))])
    return x.with_name(b.node("Div", [x.name, norm]))


@_vertex("L2Vertex")
def l2_distance(v: VertexContext) -> Activations:
    """``||a - b||_2`` per example, ``[N, 1]``."""
    if len(v.inputs) != 2:
        raise Unsupported(f"takes two inputs, has {len(v.inputs)}")
    a, other = v.inputs
    b = v.b
    diff = b.node("Sub", [a.name, other.name])
    axes = b.constant(list(range(1, _rank(a))))
    y = b.node("ReduceL2", [diff, axes], keepdims=0)
    return Activations(b.node("Unsqueeze", [y, b.constant([1])]), "FF", 1, "NC")


@_vertex("StackVertex")
def stack(v: VertexContext) -> Activations:
    """The inputs one after another along the batch axis."""
    return v.inputs[0].with_name(v.b.node("Concat", [x.name for x in v.inputs], axis=0))


@_vertex("UnstackVertex")
def unstack(v: VertexContext) -> Activations:
    """Part ``from`` of ``stackSize`` equal parts of the batch."""
    x = v.single()
    b = v.b
    part, parts = v.ctx.config_int("from"), v.ctx.config_int("stackSize")
    step = b.node("Div", [b.node("Shape", [x.name], start=0, end=1), b.constant([parts])])
    start = b.node("Mul", [step, b.constant([part])])
    end = b.node("Mul", [step, b.constant([part + 1])])
    return x.with_name(b.node("Slice", [x.name, start, end, b.constant([0])]))


_KINDS: dict[int, tuple[Kind, str]] = {
    2: ("FF", "NC"),
    3: ("RNN", "NCW"),
    4: ("CNN", "NCHW"),
    5: ("CNN3D", "NCDHW"),
}


@_vertex("ReshapeVertex")
def reshape(v: VertexContext) -> Activations:
    """``x.reshape(order, newShape)``; an 'f' reshape is a 'c' one of the axis-reversed array."""
    x = v.single()
    b = v.b
    shape = _int_list(v, "newShape")
    order = str(v.ctx.config.get("reshapeOrder", "c")).lower()
    if shape is None or len(shape) not in _KINDS or order not in ("c", "f"):
        raise Unsupported(f"ReshapeVertex to {shape!r} in order {order!r}")
    if order == "c":
        y = b.node("Reshape", [x.name, b.constant(shape)])
    else:
        flipped = b.node("Transpose", [x.name], perm=list(range(_rank(x)))[::-1])
        y = b.node("Reshape", [flipped, b.constant(shape[::-1])])
        y = b.node("Transpose", [y], perm=list(range(len(shape)))[::-1])
    kind, layout = _KINDS[len(shape)]
    return Activations(y, kind, shape[1] if shape[1] > 0 else None, layout)


@_vertex("LastTimeStepVertex")
def last_time_step(v: VertexContext) -> Activations:
    """The last time step (no masks: every sequence is full length)."""
    from omnihub.convert._dl4j_rnn import last_step

    return last_step(v.ctx, v.single())


@_vertex("ReverseTimeSeriesVertex")
def reverse_time_series(v: VertexContext) -> Activations:
    from omnihub.convert._dl4j_rnn import reverse_time

    return reverse_time(v.ctx, v.single())


@_vertex("DuplicateToTimeSeriesVertex")
def duplicate_to_time_series(v: VertexContext) -> Activations:
    """``[N, C]`` -> ``[N, C, T]``, T the time length of the network input ``inputName``."""
    from omnihub.convert._dl4j_rnn import time_axis

    x = v.single()
    source = v.values.get(str(v.ctx.config.get("inputName")))
    if source is None or source.kind != "RNN":
        raise Unsupported(f"inputName {v.ctx.config.get('inputName')!r} is no RNN input")
    b = v.b
    axis = time_axis(source)
    steps = b.node("Shape", [source.name], start=axis, end=axis + 1)
    column = b.node("Unsqueeze", [x.name, b.constant([2])])
    shape = b.node("Concat", [b.constant([1, 1]), steps], axis=0)
    return Activations(b.node("Expand", [column, shape]), "RNN", x.size, "NCW")


@_vertex("PoolHelperVertex")
def pool_helper(v: VertexContext) -> Activations:
    """``x[:, :, 1:, 1:]`` (DL4J's helper for Caffe-style pooling)."""
    x = v.single()
    b = v.b
    big = 2**62
    y = b.node("Slice", [x.name, b.constant([1, 1]), b.constant([big, big]), b.constant([2, 3])])
    return x.with_name(y)


# -- the driver -----------------------------------------------------------------------------------


def _vertex_layer(vertex: Dl4jVertex) -> Any:
    """A stand-in Dl4jLayer for a non-layer vertex (for LayerContext and messages)."""
    from omnihub.loaders._dl4j_layers import Dl4jLayer

    return Dl4jLayer(
        name=vertex.name,
        layer_name=vertex.name,
        type=vertex.type,
        class_name=vertex.class_name,
        config=vertex.config,
    )


def _describe_vertex(vertex: Dl4jVertex) -> str:
    if vertex.layer is not None:
        return f"vertex {vertex.name!r}: {describe(vertex.layer)}"
    return f"vertex {vertex.name!r} ({vertex.class_name or vertex.type})"


def _layer_input(vertex: Dl4jVertex, entry: _Entry | None) -> tuple[Kind, int | None, str] | None:
    """What a LayerVertex takes, if it says: its preprocessor's input, else its layer's."""
    from omnihub.convert._dl4j_rnn import NETWORK_INPUTS, rnn_format

    pre = vertex.config.get("preProcessor")
    if pre is not None:
        return preprocessor_input(pre)
    layer = vertex.layer
    if layer is None or entry is None:
        return None
    if layer.type in NETWORK_INPUTS:
        return NETWORK_INPUTS[layer.type]
    if entry.accepts is None:
        return None
    layout = rnn_format(layer.config) if entry.accepts == "RNN" else None
    return entry.accepts, layer.n_in, layout or layer_format(layer, entry.accepts)


def _graph_input(
    graph: ComputationGraph, name: str, entries: Mapping[str, _Entry | None]
) -> tuple[Kind, int | None, str]:
    """(kind, size, layout) of a network input: what its first consumer layer takes (its
    size only when that layer reads the input directly)."""
    frontier, seen, direct = [name], {name}, True
    while frontier:
        following = []
        for vertex in graph.vertices:
            if not any(i in frontier for i in vertex.inputs):
                continue
            found = _layer_input(vertex, entries.get(vertex.name))
            if found is not None:
                kind, size, layout = found
                return kind, size if direct else None, layout
            if vertex.name not in seen:
                seen.add(vertex.name)
                following.append(vertex.name)
        frontier, direct = following, False
    return "FF", None, "NC"


def _convert_vertex(
    vertex: Dl4jVertex,
    ctx: LayerContext,
    entry: _Entry | None,
    xs: list[Activations],
    values: Mapping[str, Activations],
) -> Activations:
    if vertex.layer is None:
        return VERTICES[vertex.type](VertexContext(ctx, xs, values))
    assert entry is not None
    if len(xs) != 1:
        raise Unsupported(f"a layer vertex takes one input, has {len(xs)}")
    x = xs[0]
    pre = vertex.config.get("preProcessor")
    if pre is not None:
        x = apply_preprocessor(ctx, pre, x)
    elif entry.accepts is not None:
        x = adapt(ctx, x, entry.accepts, layer_format(vertex.layer, entry.accepts))
    return entry.convert(ctx, x)


def graph_to_onnx(graph: ComputationGraph) -> onnx.ModelProto:
    """Convert a ComputationGraph: DL4J's input names, outputs named after the output
    vertices, dynamic batch. One LoadError lists every unsupported layer or vertex."""
    from onnx import helper

    from omnihub.convert._builder import BATCH, OnnxBuilder, elem_type

    problems = UnsupportedCollector(str(graph.path), _REGISTER_HINT)
    entries: dict[str, _Entry | None] = {}
    for vertex in graph.vertices:
        if vertex.layer is not None:
            entries[vertex.name] = _lookup(vertex.layer)
            if entries[vertex.name] is None:
                problems.add(_describe_vertex(vertex), "no converter for this layer type")
        elif vertex.type not in VERTICES:
            problems.add(_describe_vertex(vertex), "no converter for this vertex type")
    params = _layer_params(graph, problems)
    problems.raise_if_any()

    b = OnnxBuilder("dl4j_computationgraph", model_dtype(graph))
    values: dict[str, Activations] = {}
    for name in graph.inputs:
        kind, size, layout = _graph_input(graph, name, entries)
        values[name] = Activations(
            b.input(name, None, input_shape(kind, size, layout)), kind, size, layout
        )
    for name in graph.outputs:
        if name not in values:
            b.reserve(name)
    batch_value: list[str] = []

    def batch() -> str:
        if not batch_value:
            batch_value.append(b.node("Shape", [graph.inputs[0]], "batch", start=0, end=1))
        return batch_value[0]

    for vertex in graph.vertices:
        xs = [values[i] for i in vertex.inputs if i in values]
        if len(xs) != len(vertex.inputs):
            continue  # an input could not be stood in for: already reported
        layer = vertex.layer or _vertex_layer(vertex)
        ctx = LayerContext(b, layer, params.get(vertex.name, {}), batch)
        try:
            values[vertex.name] = _convert_vertex(vertex, ctx, entries.get(vertex.name), xs, values)
        except Unsupported as exc:
            problems.add(_describe_vertex(vertex), str(exc))
            if xs:  # keep going with the input, to find the problems further on too
                values[vertex.name] = xs[0]
    problems.raise_if_any()
    etype = elem_type(b.dtype)
    for name in graph.outputs:
        out = values[name]
        shape = [BATCH, *input_rank(out)[1:]]
        exposed = b.reserve(f"{name}_output") if name in graph.inputs else name
        b.nodes.append(helper.make_node("Identity", [out.name], [exposed], name=exposed))
        b.outputs.append(helper.make_tensor_value_info(exposed, etype, shape))
    return b.build()
