"""SameDiff tensor ops -> ONNX: matrix products, reshapes (orders 'c' and 'f'), permutations,
concatenation, gathering, slicing, padding and reductions."""

from __future__ import annotations

from omnihub.convert._errors import Unsupported
from omnihub.convert._samediff_ops import OPS, Converter, OpContext, register

# -- linear algebra ----------------------------------------------------------------------


def _transpose_last2(cx: OpContext, value: str, index: int) -> str:
    rank = cx.rank(index)
    perm = [*range(rank - 2), rank - 1, rank - 2]
    return cx.node("Transpose", [value], perm=perm)


@register("mmul", "matmul")
def _matmul(cx: OpContext) -> list[str]:
    # iArgs transposeX, transposeY, transposeZ; tArgs alpha, beta (beta only with an output
    # array given in place, which a graph never has)
    a, b = cx.ins[0], cx.ins[1]
    if cx.iarg(0, 0):
        a = _transpose_last2(cx, a, 0)
    if cx.iarg(1, 0):
        b = _transpose_last2(cx, b, 1)
    out = cx.node("MatMul", [a, b])
    alpha = cx.targ(0, 1.0)
    if alpha != 1.0:
        out = cx.node("Mul", [out, cx.scalar(alpha)])
    if cx.iarg(2, 0):
        rank = max(cx.rank(0), cx.rank(1))
        out = cx.node("Transpose", [out], perm=[*range(rank - 2), rank - 1, rank - 2])
    return [out]


@register("xw_plus_b")
def _xw_plus_b(cx: OpContext) -> list[str]:
    w = cx.ins[1]
    if cx.iarg(0, 0):  # bTranspose: w is [nOut, nIn]
        w = cx.node("Transpose", [w], perm=[1, 0])
    return [cx.node("Add", [cx.node("MatMul", [cx.ins[0], w]), cx.ins[2]])]


@register("biasadd")
def _biasadd(cx: OpContext) -> list[str]:
    x, bias = cx.ins[0], cx.ins[1]
    if cx.barg(0, False):  # NCHW: the bias runs along dimension 1
        bias = cx.along_axis(bias, 1, cx.rank(0))
    return [cx.node("Add", [x, bias])]


# -- shapes ---------------------------------------------------------------------------------------

_ORDER_C, _ORDER_F = -99, -102  # libnd4j passes the order char negated as iArg 0


@register("reshape")
def _reshape(cx: OpContext) -> list[str]:
    args = list(cx.op.int_args)
    order = "c"
    if args and args[0] in (_ORDER_C, _ORDER_F):
        order = "f" if args.pop(0) == _ORDER_F else "c"
    if len(cx.ins) > 1:
        shape_value = cx.static(1)
        shape = (
            cx.ints([int(v) for v in shape_value.reshape(-1)])
            if shape_value is not None
            else cx.node("Cast", [cx.ins[1]], to=7)  # INT64
        )
    elif args:
        shape = cx.ints(args)
    else:
        raise Unsupported("reshape without a shape")
    x = cx.ins[0]
    if order == "c":
        return [cx.node("Reshape", [x, shape])]
    # 'f' order: reverse the axes, reshape to the reversed shape in 'c' order, reverse back
    reversed_shape = cx.node(
        "Slice", [shape, cx.ints([-1]), cx.ints([-(2**62)]), cx.ints([0]), cx.ints([-1])]
    )
    flat = cx.node("Reshape", [cx.node("Transpose", [x]), reversed_shape])
    return [cx.node("Transpose", [flat])]


@register("permute", "transpose")
def _permute(cx: OpContext) -> list[str]:
    from_input = len(cx.ins) > 1
    perm = cx.int_values(1, "permutation") if from_input else [int(v) for v in cx.op.int_args]
    if not perm:  # transpose without a permutation reverses the axes
        return [cx.node("Transpose", cx.ins[:1])]
    rank = len(perm)
    return [cx.node("Transpose", cx.ins[:1], perm=[p % rank for p in perm])]


@register("concat")
def _concat(cx: OpContext) -> list[str]:
    values = list(cx.ins)
    if cx.barg(0, False):  # isDynamicAxis: the axis is the last input
        axis = cx.int_values(len(values) - 1, "concat axis")[0]
        values = values[:-1]
    else:
        axis = cx.iarg(0, 0)
    return [cx.node("Concat", values, axis=axis)]


@register("stack")
def _stack(cx: OpContext) -> list[str]:
    axis = cx.iarg(0, 0)
    axes = cx.ints([axis])
    return [cx.node("Concat", [cx.node("Unsqueeze", [v, axes]) for v in cx.ins], axis=axis)]


@register("gather")
def _gather(cx: OpContext) -> list[str]:
    if len(cx.ins) > 1:
        axis, indices = cx.iarg(0, 0), cx.ins[1]
    else:  # indices as iArgs after the axis
        axis, indices = cx.iarg(0, 0), cx.ints(cx.op.int_args[1:])
    return [cx.node("Gather", [cx.ins[0], indices], axis=axis)]


@register("squeeze")
def _squeeze(cx: OpContext) -> list[str]:
    axes = cx.int_values(1, "axes") if len(cx.ins) > 1 else [int(v) for v in cx.op.int_args]
    inputs = [cx.ins[0], cx.ints(axes)] if axes else cx.ins[:1]
    return [cx.node("Squeeze", inputs)]


@register("expand_dims")
def _expand_dims(cx: OpContext) -> list[str]:
    axis = cx.int_values(1, "axis")[0] if len(cx.ins) > 1 else cx.iarg(0, 0)
    return [cx.node("Unsqueeze", [cx.ins[0], cx.ints([axis])])]


@register("flatten_2d")
def _flatten_2d(cx: OpContext) -> list[str]:
    return [cx.node("Flatten", cx.ins[:1], axis=cx.iarg(0, 1))]


@register("shape_of")
def _shape_of(cx: OpContext) -> list[str]:
    return [cx.node("Shape", cx.ins[:1])]


@register("pad")
def _pad(cx: OpContext) -> list[str]:
    # inputs: x, paddings [rank, 2] (begin, end per axis), optional pad value; iArg 0 mode
    mode = {0: "constant", 1: "reflect"}.get(cx.iarg(0, 0))
    if mode is None:
        raise Unsupported("pad mode SYMMETRIC has no ONNX equivalent")
    paddings = cx.static(1)
    if paddings is None:
        raise Unsupported("paddings (input 1) must be a constant")
    pads = cx.ints([int(v) for v in paddings[:, 0]] + [int(v) for v in paddings[:, 1]])
    value = cx.ins[2] if len(cx.ins) > 2 else cx.scalar(cx.targ(0, 0.0))
    return [cx.node("Pad", [cx.ins[0], pads, value], mode=mode)]


_END = 2**62  # "to the end" for ONNX Slice (clamped to the dimension)


@register("slice")
def _slice(cx: OpContext) -> list[str]:
    # inputs x, begin, size (or iArgs begin..., size...); size -1 = to the end
    if len(cx.ins) >= 3:
        begin, size = cx.int_values(1, "begin"), cx.int_values(2, "size")
    else:
        args = [int(v) for v in cx.op.int_args]
        begin, size = args[: len(args) // 2], args[len(args) // 2 :]
    ends = [_END if n < 0 else b + n for b, n in zip(begin, size, strict=True)]
    axes = list(range(len(begin)))
    return [cx.node("Slice", [cx.ins[0], cx.ints(begin), cx.ints(ends), cx.ints(axes)])]


@register("strided_slice")
def _strided_slice(cx: OpContext) -> list[str]:
    # iArgs begin_mask, ellipsis_mask, end_mask, new_axis_mask, shrink_axis_mask, then
    # begin..., end..., strides... unless given as inputs 1-3
    masks = [cx.iarg(i, 0) for i in range(5)]
    begin_mask, ellipsis, end_mask, new_axis, shrink = masks
    if ellipsis or new_axis:
        raise Unsupported("strided_slice with an ellipsis or new-axis mask")
    if len(cx.ins) >= 4:
        begin, end, step = (
            cx.int_values(i, what) for i, what in ((1, "begin"), (2, "end"), (3, "strides"))
        )
    else:
        args = [int(v) for v in cx.op.int_args[5:]]
        n = len(args) // 3
        begin, end, step = args[:n], args[n : 2 * n], args[2 * n :]
    starts, ends = list(begin), list(end)
    for i, s in enumerate(step):
        if begin_mask >> i & 1:
            starts[i] = 0 if s > 0 else _END
        if end_mask >> i & 1:
            ends[i] = _END if s > 0 else -_END
        if shrink >> i & 1:  # one element, dimension dropped
            ends[i] = _END if starts[i] == -1 else starts[i] + 1
            step[i] = 1
    axes = list(range(len(starts)))
    y = cx.node("Slice", [cx.ins[0], cx.ints(starts), cx.ints(ends), cx.ints(axes), cx.ints(step)])
    dropped = [i for i in axes if shrink >> i & 1]
    return [cx.node("Squeeze", [y, cx.ints(dropped)]) if dropped else y]


@register("tile")
def _tile(cx: OpContext) -> list[str]:
    reps = cx.int_values(1, "repeats") if len(cx.ins) > 1 else [int(v) for v in cx.op.int_args]
    return [cx.node("Tile", [cx.ins[0], cx.ints(reps)])]


# -- reductions -----------------------------------------------------------------------------------

_REDUCE = {
    "reduce_mean": "ReduceMean",
    "reduce_sum": "ReduceSum",
    "reduce_max": "ReduceMax",
    "reduce_min": "ReduceMin",
    "reduce_prod": "ReduceProd",
    "reduce_norm1": "ReduceL1",
    "reduce_norm2": "ReduceL2",
    "reduce_sqnorm": "ReduceSumSquare",
    "reduce_logsumexp": "ReduceLogSumExp",
}


def _keep_dims(cx: OpContext) -> bool:
    keep = cx.prop("keepDims")
    if isinstance(keep, bool):
        return keep
    return cx.barg(0, False)


def _reduce(onnx_op: str) -> Converter:
    def convert(cx: OpContext) -> list[str]:
        dims = cx.dims()
        keep = int(_keep_dims(cx))
        inputs = [cx.ins[0]] if not dims else [cx.ins[0], cx.ints(dims)]
        return [cx.node(onnx_op, inputs, keepdims=keep)]

    return convert


for _name, _onnx in _REDUCE.items():
    OPS[_name] = _reduce(_onnx)


@register("argmax", "argmin")
def _argmax(cx: OpContext) -> list[str]:
    dims = cx.dims()
    onnx_op = "ArgMax" if cx.op.op_name == "argmax" else "ArgMin"
    keep = int(_keep_dims(cx))
    if not dims:  # over every element: flatten first
        flat = cx.node("Reshape", [cx.ins[0], cx.ints([-1])])
        return [cx.node(onnx_op, [flat], axis=0, keepdims=0)]
    if len(dims) != 1:
        raise Unsupported(f"{cx.op.op_name} over several dimensions {dims}")
    return [cx.node(onnx_op, cx.ins[:1], axis=dims[0], keepdims=keep)]


@register("split")
def _split(cx: OpContext) -> list[str]:
    # iArgs num_splits[, axis]; the input alone, or with a scalar axis before or after it
    parts = cx.iarg(0, 0)
    axis, x = 0, cx.ins[0]
    if len(cx.ins) > 1:
        first, second = cx.static(0), cx.static(1)
        if first is not None and first.size == 1:
            axis, x = int(first.reshape(-1)[0]), cx.ins[1]
        elif second is not None and second.size == 1:
            axis = int(second.reshape(-1)[0])
        else:
            raise Unsupported("split's axis input must be a constant scalar")
    axis = cx.iarg(1, axis)
    if parts < 1 or parts != len(cx.op.outputs):
        raise Unsupported(f"split into {parts} parts with {len(cx.op.outputs)} outputs")
    names = [cx.hint("split")] * parts
    return list(cx.b.node("Split", [x], names, axis=axis, num_outputs=parts))


@register("unstack")
def _unstack(cx: OpContext) -> list[str]:
    # iArg 0: the axis, removed from every output (one per index along it)
    axis, parts = cx.iarg(0, 0), len(cx.op.outputs)
    names = [cx.hint("unstack")] * parts
    pieces = cx.b.node("Split", cx.ins[:1], names, axis=axis, num_outputs=parts)
    axes = cx.ints([axis])
    return [cx.node("Squeeze", [piece, axes]) for piece in pieces]
