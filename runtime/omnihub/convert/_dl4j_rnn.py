"""Recurrent DL4J layers -> ONNX: LSTM, GravesLSTM, GravesBidirectionalLSTM, SimpleRnn,
Bidirectional, LastTimeStep, TimeDistributed, RnnOutputLayer, Embedding/EmbeddingSequence and
GlobalPooling.

Where ONNX's own LSTM/RNN op computes exactly DL4J's cell -- sigmoid gates and tanh, in a
FLOAT model (onnxruntime's kernels are float-only; ``onnx.reference`` implements only these
activations) -- the op is used. Every other recurrence is an ONNX ``Scan`` over the time axis
whose body is DL4J's own cell (``LSTMHelpers.activateHelper``, ``SimpleRnn.activateHelper``),
so every activation DL4J allows works; its input projection ``x @ W + b`` is one MatMul over
the whole sequence, outside the loop. Batch and time stay dynamic either way.

DL4J's LSTM weights, ``W`` ``[nIn, 4n]``, ``RW`` ``[n, 4n]`` (GravesLSTM: ``[n, 4n+3]``) and
``b`` ``[4n]``, hold four blocks in the order *block input* a (``activationFn``), *forget* f,
*output* o, *input-modulation* g (the last three ``gateActivationFn``, sigmoid by default).
ONNX's LSTM orders them i, o, f, c, i.e. DL4J's g, o, f, a. GravesLSTM's three extra ``RW``
columns are the peepholes: column 4n on the forget gate and 4n+2 on the input-modulation gate
(both from c[t-1]), column 4n+1 on the output gate (from c[t])::

    c[t] = f * c[t-1] + g * act(a)        h[t] = o * act(c[t])

SimpleRnn is ``h[t] = act(x[t] @ W + h[t-1] @ RW + b)``. Bidirectional runs its forward copy
(params ``f*``) on the sequence and its backward copy (``b*``) on the reversed sequence, reverses
that output back, and combines by CONCAT (features), ADD, MUL or AVERAGE;
GravesBidirectionalLSTM is the sum of its forward (``*F``) and backward (``*B``) peephole LSTMs.

Masks (variable-length sequences) are not inputs of the converted model: every sequence
runs to its full length, which is what DL4J does without a mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from omnihub.convert._activations import apply_activation
from omnihub.convert._builder import OnnxBuilder, elem_type
from omnihub.convert._errors import Unsupported
from omnihub.convert._preprocessors import to_layout
from omnihub.convert.dl4j import (
    Activations,
    Kind,
    LayerContext,
    LayerConverter,
    converter_for,
    layer_converter,
)

if TYPE_CHECKING:
    import numpy.typing as npt
    from onnx import GraphProto

    from omnihub.loaders._dl4j_layers import Dl4jLayer

__all__ = [
    "NETWORK_INPUTS",
    "FloatView",
    "SubgraphBuilder",
    "in_float",
    "reverse_time",
    "rnn_format",
    "time_axis",
]


class SubgraphBuilder(OnnxBuilder):
    """Builds the body of a control-flow node (``Scan``): value names come from the outer
    graph's namespace and constants are put in the outer graph, which a body may read."""

    def __init__(self, outer: OnnxBuilder, name: str) -> None:
        super().__init__(name, outer.dtype)
        self.outer = outer

    def fresh(self, hint: str = "v") -> str:
        return self.outer.fresh(hint)

    def reserve(self, name: str) -> str:
        return self.outer.reserve(name)

    def initializer(self, array: npt.ArrayLike, name: str | None = None) -> str:
        return self.outer.initializer(array, name)

    def graph(self, inputs: Sequence[str], outputs: Sequence[str]) -> GraphProto:
        """The body graph: rank-2 inputs and outputs of the model's dtype (Scan's per-step
        states and slices here are all ``[N, units]``)."""
        from onnx import helper

        etype = elem_type(self.dtype)
        names = [self.fresh(f"{self.name}_out") for _ in outputs]
        for value, name in zip(outputs, names, strict=True):
            self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        return helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(n, etype, [None, None]) for n in inputs],
            [helper.make_tensor_value_info(n, etype, [None, None]) for n in names],
        )


class FloatView(OnnxBuilder):
    """The same graph seen as computing in FLOAT: nodes go to ``outer``'s list, constants are
    FLOAT, and a weight stored in ``outer``'s dtype is read through a Cast (folded by
    onnxruntime at load), so the weights stay FLOAT16 initializers, copied once."""

    def __init__(self, outer: OnnxBuilder) -> None:
        super().__init__(outer.name, "float32")
        self.outer = outer
        self.nodes = outer.nodes

    def fresh(self, hint: str = "v") -> str:
        return self.outer.fresh(hint)

    def reserve(self, name: str) -> str:
        return self.outer.reserve(name)

    def initializer(self, array: npt.ArrayLike, name: str | None = None) -> str:
        import numpy as np

        values = np.asarray(array)
        stored = self.outer.initializer(values, name)
        if values.dtype == self.outer.dtype:
            return self.cast(stored, elem_type(self.dtype))
        return stored


def in_float(convert: LayerConverter) -> LayerConverter:
    """Run ``convert`` in FLOAT when the model is FLOAT16, casting its input and output.

    onnxruntime 1.32 segfaults at session creation when its MatmulTransposeFusion meets a
    FLOAT16 Transpose with perm [1, 2, 0] or [1, 0, 2] feeding a MatMul -- exactly the
    layouts a recurrent layer and its neighbours (FeedForwardToRnn, ...) produce. In FLOAT
    the fusion is fine. (The recurrences are then computed in FLOAT too, as libnd4j's own
    half-precision LSTM helpers do; results round to half at the layer's output.)
    """

    def converter(ctx: LayerContext, x: Activations) -> Activations:
        if ctx.b.dtype.name != "float16":
            return convert(ctx, x)
        float_ctx = LayerContext(FloatView(ctx.b), ctx.layer, ctx.params, ctx.batch_size)
        y = convert(float_ctx, x.with_name(ctx.b.cast(x.name, elem_type("float32"))))
        return y.with_name(ctx.b.cast(y.name, elem_type(ctx.b.dtype)))

    converter.__doc__ = convert.__doc__
    return converter


# -- layouts ------------------------------------------------------------------------------------


def rnn_format(config: Mapping[str, Any]) -> str:
    """A recurrent layer's data format (``rnnDataFormat``; a wrapper's is its inner layer's)."""
    value = config.get("rnnDataFormat")
    if isinstance(value, str) and value:
        return value.upper()
    for key in ("fwd", "underlying"):
        inner = _inner(config, key)
        if inner is not None:
            return rnn_format(inner[1])
    return "NCW"


def time_axis(x: Activations) -> int:
    """The time axis of RNN activations: 2 (NCW) or 1 (NWC)."""
    return 1 if x.layout == "NWC" else 2


def reverse_time(ctx: LayerContext, x: Activations) -> Activations:
    """``x`` with its time axis reversed."""
    b = ctx.b
    ends = b.constant([-(2**63)])
    axis = b.constant([time_axis(x)])
    step = b.constant([-1])
    return x.with_name(b.node("Slice", [x.name, step, ends, axis, step], f"{ctx.prefix}_rev"))


def _from_steps(ctx: LayerContext, y: str, size: int, layout: str) -> Activations:
    """NCW or NWC activations from a Scan's stacked per-step outputs ``[T, units, N]``."""
    perm = [2, 0, 1] if layout == "NWC" else [2, 1, 0]
    out = ctx.b.node("Transpose", [y], f"{ctx.prefix}_out", perm=perm)
    return Activations(out, "RNN", size, layout)


# -- the recurrences ----------------------------------------------------------------------------


class _Cell:
    """One direction of a DL4J recurrent layer: its weights and activations."""

    def __init__(self, ctx: LayerContext, suffix: str = "", *, lstm: bool, peephole: bool) -> None:
        self.ctx = ctx
        self.lstm = lstm
        self.w_key, self.rw_key, self.b_key = (f"{k}{suffix}" for k in ("W", "RW", "b"))
        rw = self.param(self.rw_key)
        self.units = int(rw.shape[0])
        blocks = 4 * self.units if lstm else self.units
        self.recurrent = ctx.weight(self.rw_key, rw[:, :blocks])
        self.peepholes: list[str] = []
        if peephole:
            if rw.shape[1] != blocks + 3:
                raise Unsupported(f"{self.rw_key} has shape {list(rw.shape)}, no peepholes")
            self.peepholes = [
                ctx.weight(f"{self.rw_key}_{gate}", rw[:, blocks + i])
                for i, gate in enumerate(("wFF", "wOO", "wGG"))
            ]
        config = ctx.config
        self.act = config.get("activationFn", config.get("activationFunction", "tanh"))
        self.gate = config.get("gateActivationFn", "sigmoid")

    def param(self, key: str) -> npt.NDArray[Any]:
        if key not in self.ctx.params:
            raise Unsupported(f"has no parameter {key!r} (has: {', '.join(self.ctx.params)})")
        return self.ctx.params[key]

    def matches_onnx_op(self) -> bool:
        """Whether ONNX's LSTM (RNN) op computes exactly this cell: sigmoid gates and tanh
        activations (ONNX's defaults, the only ones ``onnx.reference`` implements), in FLOAT
        (onnxruntime's LSTM and RNN kernels are float-only)."""
        from omnihub.convert._activations import parse_activation

        return (
            self.ctx.b.dtype.name == "float32"
            and parse_activation(self.act)[0] == "tanh"
            and (not self.lstm or parse_activation(self.gate)[0] == "sigmoid")
        )

    def run_onnx_op(self, x: Activations, *, reverse: bool) -> str:
        """The per-step outputs ``[T, units, N]`` from ONNX's LSTM or RNN op. An LSTM's
        blocks a, f, o, g are reordered to ONNX's i, o, f, c (= g, o, f, a) in the graph
        (constant-folded by onnxruntime), so the weights are still copied only once."""
        ctx, b = self.ctx, self.ctx.b

        def onnx_order(matrix: str, axis: int) -> str:
            if not self.lstm:
                return matrix
            a, f, o, g = b.node("Split", [matrix], 4, axis=axis, num_outputs=4)
            return b.node("Concat", [g, o, f, a], axis=axis)

        first = b.constant([0])
        w = b.node("Transpose", [onnx_order(ctx.weight(self.w_key), 1)], perm=[1, 0])
        r = b.node("Transpose", [onnx_order(self.recurrent, 1)], perm=[1, 0])
        inputs = [b.node("Unsqueeze", [w, first]), b.node("Unsqueeze", [r, first]), ""]
        if self.b_key in ctx.params:  # ONNX adds Wb and Rb: Rb = 0
            zeros = b.constant([0.0] * (4 * self.units if self.lstm else self.units))
            bias = b.node("Concat", [onnx_order(ctx.weight(self.b_key), 0), zeros], axis=0)
            inputs[2] = b.node("Unsqueeze", [bias, first])
        if self.peepholes:  # ONNX: i, o, f = DL4J's wGG, wOO, wFF
            w_ff, w_oo, w_gg = self.peepholes
            peep = b.node("Concat", [w_gg, w_oo, w_ff], axis=0)
            inputs += ["", "", "", b.node("Unsqueeze", [peep, first])]
        perm = [1, 0, 2] if x.layout == "NWC" else [2, 0, 1]
        x_tm = b.node("Transpose", [x.name], f"{ctx.prefix}_steps", perm=perm)
        op = "LSTM" if self.lstm else "RNN"
        y = b.node(
            op,
            [x_tm, *inputs],
            f"{ctx.prefix}_{op.lower()}",
            hidden_size=self.units,
            direction="reverse" if reverse else "forward",
        )
        steps = b.node("Squeeze", [y, b.constant([1])])  # [T, N, units]
        return b.node("Transpose", [steps], perm=[0, 2, 1])

    def run(self, x: Activations, *, reverse: bool) -> str:
        """The per-step outputs ``[T, units, N]`` of the layer on ``x`` (NCW or NWC): ONNX's
        LSTM/RNN op where it matches DL4J exactly, else a Scan over DL4J's cell.

        ``x @ W + b`` is one MatMul over the whole sequence, made time-major for the Scan
        after the product. (Transposes straight into a MatMul are avoided on purpose:
        onnxruntime 1.32 crashes fusing some of them in FLOAT16 graphs. For the same reason
        the steps are stacked as ``[units, N]``.)
        """
        if self.matches_onnx_op():
            return self.run_onnx_op(x, reverse=reverse)
        ctx, b = self.ctx, self.ctx.b
        weights, bias = self.param(self.w_key), ctx.params.get(self.b_key)
        if x.layout == "NWC":  # [N, T, C] @ [C, k] -> [N, T, k]
            projected = b.node("MatMul", [x.name, ctx.weight(self.w_key)], f"{ctx.prefix}_xw")
            if bias is not None:
                projected = b.node("Add", [projected, ctx.weight(self.b_key)])
            perm = [1, 0, 2]
        else:  # [k, C] @ [N, C, T] -> [N, k, T]
            w_t = ctx.weight(self.w_key, weights.T)
            projected = b.node("MatMul", [w_t, x.name], f"{ctx.prefix}_xw")
            if bias is not None:
                projected = b.node("Add", [projected, ctx.weight(self.b_key, bias.reshape(-1, 1))])
            perm = [2, 0, 1]
        projected = b.node("Transpose", [projected], f"{ctx.prefix}_steps", perm=perm)
        if reverse:
            projected = _reverse_axis0(b, projected)
        zeros = _zero_state(b, projected, self.units)
        body = SubgraphBuilder(b, b.fresh(f"{ctx.prefix}_cell"))
        h, zx = body.fresh(f"{body.name}_h"), body.fresh(f"{body.name}_zx")
        if self.lstm:
            c = body.fresh(f"{body.name}_c")
            h_new, c_new = self._lstm_step(body, h, c, zx)
            column = body.node("Transpose", [h_new], perm=[1, 0])
            graph = body.graph([h, c, zx], [h_new, c_new, column])
            outs = b.node("Scan", [zeros, zeros, projected], 3, body=graph, num_scan_inputs=1)
        else:
            z = body.node("Add", [zx, body.node("MatMul", [h, self.recurrent])])
            h_new = apply_activation(body, z, self.act)
            column = body.node("Transpose", [h_new], perm=[1, 0])
            graph = body.graph([h, zx], [h_new, column])
            outs = b.node("Scan", [zeros, projected], 2, body=graph, num_scan_inputs=1)
        y = outs[-1]
        return _reverse_axis0(b, y) if reverse else y

    def _lstm_step(self, body: SubgraphBuilder, h: str, c: str, zx: str) -> tuple[str, str]:
        """``LSTMHelpers.activateHelper``'s loop body, one step."""
        z = body.node("Add", [zx, body.node("MatMul", [h, self.recurrent])])
        a, f, o, g = body.node("Split", [z, body.constant([self.units] * 4)], 4, axis=1)
        if self.peepholes:
            f = body.node("Add", [f, body.node("Mul", [c, self.peepholes[0]])])
            g = body.node("Add", [g, body.node("Mul", [c, self.peepholes[2]])])
        a = apply_activation(body, a, self.act)
        f = apply_activation(body, f, self.gate)
        g = apply_activation(body, g, self.gate)
        c_new = body.node("Add", [body.node("Mul", [f, c]), body.node("Mul", [g, a])])
        if self.peepholes:
            o = body.node("Add", [o, body.node("Mul", [c_new, self.peepholes[1]])])
        o = apply_activation(body, o, self.gate)
        return body.node("Mul", [o, apply_activation(body, c_new, self.act)]), c_new


def _reverse_axis0(b: OnnxBuilder, value: str) -> str:
    step = b.constant([-1])
    return b.node("Slice", [value, step, b.constant([-(2**63)]), b.constant([0]), step])


def _zero_state(b: OnnxBuilder, time_major: str, units: int) -> str:
    """Zeros [N, units], N taken from a time-major [T, N, ...] value."""
    import numpy as np
    from onnx import numpy_helper

    batch = b.node("Shape", [time_major], start=1, end=2)
    shape = b.node("Concat", [batch, b.constant([units])], axis=0)
    zero = numpy_helper.from_array(np.zeros(1, dtype=b.dtype))
    return b.node("ConstantOfShape", [shape], "zero_state", value=zero)


def _recurrent(
    ctx: LayerContext, x: Activations, *, lstm: bool, peephole: bool, bidirectional: bool = False
) -> Activations:
    layout = rnn_format(ctx.config)
    if not bidirectional:
        cell = _Cell(ctx, lstm=lstm, peephole=peephole)
        return _from_steps(ctx, cell.run(x, reverse=False), cell.units, layout)
    forward = _Cell(ctx, "F", lstm=lstm, peephole=peephole)
    backward = _Cell(ctx, "B", lstm=lstm, peephole=peephole)
    y_f, y_b = forward.run(x, reverse=False), backward.run(x, reverse=True)
    total = ctx.b.node("Add", [y_f, y_b], f"{ctx.prefix}_sum")
    return _from_steps(ctx, total, forward.units, layout)


@layer_converter("LSTM", accepts="RNN")
@in_float
def lstm(ctx: LayerContext, x: Activations) -> Activations:
    """DL4J's LSTM (no peepholes)."""
    return _recurrent(ctx, x, lstm=True, peephole=False)


@layer_converter("GravesLSTM", accepts="RNN")
@in_float
def graves_lstm(ctx: LayerContext, x: Activations) -> Activations:
    """GravesLSTM: the LSTM with peepholes in RW's last three columns."""
    return _recurrent(ctx, x, lstm=True, peephole=True)


@layer_converter("GravesBidirectionalLSTM", accepts="RNN")
@in_float
def graves_bidirectional_lstm(ctx: LayerContext, x: Activations) -> Activations:
    """GravesBidirectionalLSTM: forward plus backward peephole LSTM, summed."""
    return _recurrent(ctx, x, lstm=True, peephole=True, bidirectional=True)


@layer_converter("SimpleRnn", accepts="RNN")
@in_float
def simple_rnn(ctx: LayerContext, x: Activations) -> Activations:
    """SimpleRnn: ``h[t] = act(x[t] W + h[t-1] RW + b)``; layer normalisation unsupported."""
    if ctx.config.get("hasLayerNorm") is True:
        raise Unsupported("SimpleRnn with hasLayerNorm=true has no ONNX mapping yet")
    return _recurrent(ctx, x, lstm=False, peephole=False)


# -- wrappers -----------------------------------------------------------------------------------


def _inner(config: Mapping[str, Any], key: str) -> tuple[str, Mapping[str, Any]] | None:
    from omnihub.loaders._dl4j_layers import inner_layer

    return inner_layer(config.get(key))


def _wrapped(ctx: LayerContext, key: str, prefix: str = "") -> tuple[LayerContext, LayerConverter]:
    """A context for the layer a wrapper holds under ``key`` (its params: those starting with
    ``prefix``, without it) and that layer's converter."""
    from omnihub.loaders._dl4j_layers import Dl4jLayer

    found = _inner(ctx.config, key)
    if found is None:
        raise Unsupported(f"has no wrapped layer under {key!r}")
    type_name, body = found
    class_name = body.get("@class")
    layer: Dl4jLayer = Dl4jLayer(
        name=ctx.layer.name,
        layer_name=f"{ctx.prefix}_{key}",
        type=type_name,
        class_name=class_name if isinstance(class_name, str) else None,
        config=body,
        n_in=ctx.layer.n_in,
        n_out=ctx.layer.n_out,
    )
    convert = converter_for(layer)
    if convert is None:
        raise Unsupported(f"wraps {class_name or type_name}, which has no converter")
    params = {k[len(prefix) :]: v for k, v in ctx.params.items() if k.startswith(prefix)}
    return LayerContext(ctx.b, layer, params, ctx.batch_size), convert


@layer_converter("Bidirectional", accepts="RNN")
def bidirectional(ctx: LayerContext, x: Activations) -> Activations:
    """``Bidirectional(layer)``: a forward and a backward copy, combined by ``mode``."""
    mode = str(ctx.config.get("mode", "CONCAT")).upper()
    if mode not in ("CONCAT", "ADD", "MUL", "AVERAGE"):
        raise Unsupported(f"Bidirectional mode {mode!r}")
    fwd_ctx, fwd = _wrapped(ctx, "fwd", "f")
    bwd_ctx, bwd = _wrapped(ctx, "bwd", "b")
    layout = rnn_format(fwd_ctx.config)
    x = to_layout(ctx, x, layout)
    out_f = fwd(fwd_ctx, x)
    out_b = bwd(bwd_ctx, reverse_time(ctx, x))
    if out_b.kind == "RNN":  # a wrapped LastTimeStep gives [N, n]: nothing to reverse
        out_b = reverse_time(ctx, out_b)
    b = ctx.b
    if mode == "CONCAT":
        size = None if out_f.size is None or out_b.size is None else out_f.size + out_b.size
        axis = out_f.channel_axis
        return out_f.with_name(b.node("Concat", [out_f.name, out_b.name], axis=axis), size)
    op = {"ADD": "Add", "MUL": "Mul", "AVERAGE": "Add"}[mode]
    y = b.node(op, [out_f.name, out_b.name], f"{ctx.prefix}_{mode.lower()}")
    if mode == "AVERAGE":
        y = b.node("Mul", [y, b.scalar(0.5)], f"{ctx.prefix}_average")
    return out_f.with_name(y)


def last_step(ctx: LayerContext, x: Activations) -> Activations:
    """The last time step of RNN activations, ``[N, size]``."""
    if x.kind != "RNN":
        return x
    index = ctx.b.constant(-1)
    y = ctx.b.node("Gather", [x.name, index], f"{ctx.prefix}_last", axis=time_axis(x))
    return Activations(y, "FF", x.size, "NC")


@layer_converter("LastTimeStep", accepts="RNN")
def last_time_step(ctx: LayerContext, x: Activations) -> Activations:
    """``LastTimeStep(layer)``: the wrapped layer's output at the last step."""
    inner_ctx, convert = _wrapped(ctx, "underlying")
    return last_step(ctx, convert(inner_ctx, to_layout(ctx, x, rnn_format(ctx.config))))


@layer_converter("TimeDistributed", accepts="RNN")
def time_distributed(ctx: LayerContext, x: Activations) -> Activations:
    """``TimeDistributed(layer)``: the wrapped feed-forward layer on every step, as DL4J's
    reshape of ``[N, C, T]`` to ``[N*T, C]`` rows (batch-major) and back."""
    b = ctx.b
    x = to_layout(ctx, x, rnn_format(ctx.config))
    steps = x.name if x.layout == "NWC" else b.node("Transpose", [x.name], perm=[0, 2, 1])
    features = b.node("Shape", [steps], start=2)
    rows = b.node("Reshape", [steps, b.node("Concat", [b.constant([-1]), features], axis=0)])
    inner_ctx, convert = _wrapped(ctx, "underlying")
    y = convert(inner_ctx, Activations(rows, "FF", x.size, "NC"))
    if y.kind != "FF":
        raise Unsupported(f"wraps a layer giving {y.kind} activations, not feed-forward ones")
    leading = b.node("Shape", [steps], start=0, end=2)
    shape = b.node("Concat", [leading, b.constant([-1])], axis=0)
    out = b.node("Reshape", [y.name, shape], f"{ctx.prefix}_steps")  # [N, T, nOut]
    if x.layout != "NWC":
        out = b.node("Transpose", [out], f"{ctx.prefix}_ncw", perm=[0, 2, 1])
    return Activations(out, "RNN", y.size, x.layout)


# -- output, embedding and pooling layers ---------------------------------------------------------


@layer_converter("RnnOutputLayer", accepts="RNN")
@in_float
def rnn_output(ctx: LayerContext, x: Activations) -> Activations:
    """``activation(x[t] @ W + b)`` at every step, softmax over the features. NCW input is
    multiplied from the left (``W^T @ x``), so no transposes are needed."""
    b = ctx.b
    layout = rnn_format(ctx.config)
    if layout == "NWC":
        return Activations(
            ctx.activation(ctx.dense(x.name), axis=-1), "RNN", ctx.layer.n_out, layout
        )
    weights = ctx.params.get("W")
    if weights is None:
        raise Unsupported("RnnOutputLayer without a weight matrix 'W'")
    y = b.node("MatMul", [ctx.weight("W", weights.T), x.name], f"{ctx.prefix}_matmul")
    bias = ctx.params.get("b")
    if bias is not None:
        y = b.node("Add", [y, ctx.weight("b", bias.reshape(-1, 1))], f"{ctx.prefix}_add")
    return Activations(ctx.activation(y, axis=1), "RNN", ctx.layer.n_out, layout)


def _lookup_rows(ctx: LayerContext, indices: str) -> str:
    """``W[indices] + b`` then the activation (last axis = features)."""
    b = ctx.b
    index = b.node("Cast", [indices], f"{ctx.prefix}_index", to=7)  # INT64, truncating
    rows = b.node("Gather", [ctx.weight("W"), index], f"{ctx.prefix}_rows", axis=0)
    if ctx.has_param("b"):
        rows = b.node("Add", [rows, ctx.weight("b")], f"{ctx.prefix}_bias")
    return ctx.activation(rows, axis=-1)


#: What a network input read directly by these layers is: indices, not ``nIn`` features
#: (``nIn`` is the vocabulary size). ``[N, 1]`` for EmbeddingLayer, ``[N, T]`` for sequences.
NETWORK_INPUTS: dict[str, tuple[Kind, int | None, str]] = {
    "EmbeddingLayer": ("FF", 1, "NC"),
    "EmbeddingSequenceLayer": ("FF", None, "NC"),
}


@layer_converter("EmbeddingLayer", accepts="FF")
def embedding(ctx: LayerContext, x: Activations) -> Activations:
    """Indices ``[N, 1]`` -> rows of ``W`` ``[N, nOut]``."""
    flat = ctx.b.node("Reshape", [x.name, ctx.b.constant([-1])], f"{ctx.prefix}_flat")
    return ctx.ff(_lookup_rows(ctx, flat))


@layer_converter("EmbeddingSequenceLayer")
def embedding_sequence(ctx: LayerContext, x: Activations) -> Activations:
    """Indices ``[N, T]`` (or ``[N, 1, T]``) -> ``[N, nOut, T]`` (NCW) or ``[N, T, nOut]``."""
    b = ctx.b
    indices = x.name
    if x.kind == "RNN":  # [N, 1, T] or [N, T, 1]
        axis = b.constant([2 if x.layout == "NWC" else 1])
        indices = b.node("Squeeze", [indices, axis], f"{ctx.prefix}_indices")
    elif x.kind != "FF":
        raise Unsupported(f"takes [N, T] indices, not {x.kind} activations")
    rows = _lookup_rows(ctx, indices)  # [N, T, nOut]
    fmt = ctx.config.get("outputFormat", ctx.config.get("rnnDataFormat", "NCW"))
    layout = str(fmt).upper() if isinstance(fmt, str) else "NCW"
    if layout != "NWC":
        rows = b.node("Transpose", [rows], f"{ctx.prefix}_ncw", perm=[0, 2, 1])
        layout = "NCW"
    return Activations(rows, "RNN", ctx.layer.n_out, layout)


_POOLING_DIMS = {"NCW": [2], "NWC": [1], "NCHW": [2, 3], "NHWC": [1, 2]}
_POOLING_DIMS.update({"NCDHW": [2, 3, 4], "NDHWC": [1, 2, 3]})


@layer_converter("GlobalPoolingLayer")
def global_pooling(ctx: LayerContext, x: Activations) -> Activations:
    """MAX, AVG, SUM or PNORM over ``poolingDimensions`` (default: time, or height and width,
    or depth, height and width); ``collapseDimensions`` drops the reduced axes."""
    if x.kind == "FF":
        raise Unsupported("global pooling of feed-forward (rank 2) activations")
    b = ctx.b
    dims = ctx.config.get("poolingDimensions") or _POOLING_DIMS[x.layout]
    if not isinstance(dims, list) or not all(isinstance(d, int) for d in dims):
        raise Unsupported(f"poolingDimensions {dims!r}")
    pooling = str(ctx.config.get("poolingType", "MAX")).upper()
    keep = 0 if ctx.config.get("collapseDimensions", True) is not False else 1
    axes = b.constant(dims)
    ops = {"MAX": "ReduceMax", "AVG": "ReduceMean", "SUM": "ReduceSum"}
    if pooling in ops:
        y = b.node(ops[pooling], [x.name, axes], f"{ctx.prefix}_pool", keepdims=keep)
    elif pooling == "PNORM":
        p = float(ctx.config_int("pnorm", 2))
        powered = b.node("Pow", [b.node("Abs", [x.name]), b.scalar(p)])
        total = b.node("ReduceSum", [powered, axes], keepdims=keep)
        y = b.node("Pow", [total, b.scalar(1.0 / p)], f"{ctx.prefix}_pnorm")
    else:
        raise Unsupported(f"poolingType {pooling!r}")
    if keep:
        return x.with_name(y)
    standard = sorted(dims) == _POOLING_DIMS[x.layout]
    return Activations(y, "FF", x.size if standard else None, "NC")
