"""SameDiff FlatGraph -> ONNX: convert the ops the requested outputs need, one converter each.

The ONNX graph keeps SameDiff's names: placeholders become graph inputs (declared shape, -1 a
symbolic size: ``batch`` for the first dimension), stored weights and constants become
initializers in their own dtype, requested variables become graph outputs. Only the ops the
outputs depend on are converted, so a graph's training-only part (loss ops and the ``label``
placeholder) is left out. Converters live in :mod:`omnihub.convert._samediff_ops`.

Default outputs (``outputs=None``): the graph's declared outputs, or, when the file declares
none (as SameDiff's ``asFlatFile`` often leaves it), the results of ops that nothing else
consumes, ignoring loss ops and loss variables and the unused side outputs of an op whose main
output is used (e.g. an LSTM's last cell state).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported, UnsupportedCollector
from omnihub.errors import LoadError

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from omnihub.convert._builder import OnnxBuilder
    from omnihub.convert._samediff_ops import Converter
    from omnihub.loaders.samediff import SameDiffGraph, SameDiffOp

__all__ = ["default_outputs", "samediff_to_onnx"]


def _is_loss(op: SameDiffOp, loss_variables: Collection[str]) -> bool:
    from omnihub.convert._samediff_ops import LOSS_OPS

    return (
        op.op_name in LOSS_OPS
        or op.op_name.endswith("_loss")
        or any(o in loss_variables for o in op.outputs)
    )


def default_outputs(graph: SameDiffGraph) -> tuple[str, ...]:
    """The variables ``output(placeholders)`` returns when no outputs are named."""
    loss = set(graph.loss_variables)
    if graph.outputs:
        return tuple(o for o in graph.outputs if o not in loss)
    kept = [op for op in graph.ops if not _is_loss(op, loss)]
    consumed = {name for op in kept for name in op.inputs}
    result: list[str] = []
    for op in kept:
        if not any(o in consumed for o in op.outputs):
            result.extend(o for o in op.outputs if o not in loss)
    return tuple(result)


def _needed_ops(graph: SameDiffGraph, outputs: Sequence[str]) -> list[SameDiffOp]:
    """The ops ``outputs`` depend on, in an order where producers come first."""
    producer = {name: op for op in graph.ops for name in op.outputs}
    needed: dict[str, SameDiffOp] = {}
    stack = [producer[o] for o in outputs if o in producer]
    while stack:
        op = stack.pop()
        if op.name in needed:
            continue
        needed[op.name] = op
        stack.extend(producer[i] for i in op.inputs if i in producer)
    ordered: list[SameDiffOp] = []
    done: set[str] = set()
    pending = [op for op in graph.ops if op.name in needed]
    while pending:  # one pass when the file order is topological (as SameDiff writes it)
        waiting = []
        for op in pending:
            if all(i not in producer or producer[i].name in done for i in op.inputs):
                ordered.append(op)
                done.add(op.name)
            else:
                waiting.append(op)
        if len(waiting) == len(pending):
            names = [o.name for o in waiting]
            raise LoadError(f"{graph.path}: the SameDiff graph has a cycle among ops {names}")
        pending = waiting
    return ordered


def _np_dtype(name: str, default: np.dtype[Any]) -> np.dtype[Any]:
    import numpy as np

    from omnihub.loaders._nd4j import NUMPY_DTYPES

    code = NUMPY_DTYPES.get(name)
    return default if code is None else np.dtype(code)


class _Ranks:
    """Ranks (and element types) of ONNX values: declared shapes, else ONNX shape inference.

    Inference runs node by node over the nodes added since the last question, so a graph
    whose converters ask often (one batchnorm per layer) is still inferred once in total; a
    value the per-node pass cannot type (e.g. behind a Scan) falls back to whole-graph
    inference.
    """

    def __init__(self, builder: OnnxBuilder) -> None:
        self.b = builder
        self.known: dict[str, int] = {}
        self.elem_types: dict[str, int] = {}
        self._types: dict[str, onnx.TypeProto] = {}
        self._data: dict[str, onnx.TensorProto] = {}
        self._seen = (0, 0, 0)  # inputs, initializers, nodes already typed

    def __call__(self, value: str) -> int:
        if value not in self.known:
            self._infer_nodes()
        if value not in self.known:
            self._infer_graph()
        if value not in self.known:
            raise Unsupported(f"the rank of {value!r} is unknown (shape inference found none)")
        return self.known[value]

    def _record(self, name: str, value_type: onnx.TypeProto) -> None:
        self._types[name] = value_type
        tensor = value_type.tensor_type
        if tensor.HasField("shape"):
            self.known[name] = len(tensor.shape.dim)
        if tensor.elem_type:
            self.elem_types[name] = tensor.elem_type

    def _initializers(self) -> Sequence[onnx.TensorProto]:
        tensors: Sequence[onnx.TensorProto] = self.b._model.graph.initializer  # kept in its model
        return tensors

    def _infer_nodes(self) -> None:
        import onnx
        from onnx import defs, helper, shape_inference

        from omnihub.convert._builder import OPSET

        n_inputs, n_inits, n_nodes = self._seen
        for info in self.b.inputs[n_inputs:]:
            self._record(info.name, info.type)
        tensors = self._initializers()
        for tensor in tensors[n_inits:]:
            self._record(tensor.name, helper.make_tensor_type_proto(tensor.data_type, tensor.dims))
            if len(tensor.raw_data) <= 1024:  # shapes, axes: inference needs their values
                self._data[tensor.name] = tensor
        opsets = [helper.make_opsetid("", OPSET)]
        for node in self.b.nodes[n_nodes:]:
            if any(i and i not in self._types for i in node.input):
                continue
            outer_scope = any(a.type == onnx.AttributeProto.GRAPH for a in node.attribute)
            types = self._types if outer_scope else {i: self._types[i] for i in node.input if i}
            try:
                schema = defs.get_schema(node.op_type, OPSET, node.domain)
                inferred = shape_inference.infer_node_outputs(
                    schema, node, types, self._data, opset_imports=opsets
                )
            except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
                continue
            for name, value_type in inferred.items():
                self._record(name, value_type)
        self._seen = (len(self.b.inputs), len(tensors), len(self.b.nodes))

    def _infer_graph(self) -> None:
        import onnx
        from onnx import helper

        from omnihub.convert._builder import OPSET

        # small constants (shapes, axes) by value, weights by type and shape only: no copy
        tensors = self._initializers()
        small = [t for t in tensors if len(t.raw_data) <= 1024]
        weights = [
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
            for t in tensors
            if len(t.raw_data) > 1024
        ]
        graph = helper.make_graph(
            self.b.nodes, "ranks", [*self.b.inputs, *weights], [], initializer=small
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model)
        for info in [*inferred.graph.value_info, *inferred.graph.input]:
            self._record(info.name, info.type)


# The driver reads top to bottom (outputs, placeholders, weights, ops, unsupported list,
# graph outputs); each step is a few lines and splitting them would pass six locals around.
def samediff_to_onnx(  # noqa: PLR0912, PLR0915
    graph: SameDiffGraph, outputs: str | Sequence[str] | None = None
) -> onnx.ModelProto:
    """Convert ``graph`` (the part ``outputs`` needs) to a checked ONNX model.

    Unsupported ops raise one :class:`LoadError` naming the first and listing all others.
    """
    import numpy as np

    from omnihub.convert._builder import BATCH, OnnxBuilder
    from omnihub.convert._samediff_ops import OpContext
    from omnihub.loaders._samediff_enums import VariableKind

    wanted = _resolve_outputs(graph, outputs)
    loss = set(graph.loss_variables)
    variables = {v.name: v for v in graph.variables}
    ops = _needed_ops(graph, wanted)
    registry = _converters()
    produced = {o for op in ops for o in op.outputs}
    sources = [
        name
        for name in dict.fromkeys([*(i for op in ops for i in op.inputs), *wanted])
        if name not in produced
    ]
    floats = [
        _np_dtype(variables[n].dtype, np.dtype("float32"))
        for n in sources
        if n in variables and variables[n].dtype in ("HALF", "FLOAT", "DOUBLE")
    ]
    builder = OnnxBuilder(graph.path.stem, floats[0] if floats else np.dtype("float32"))
    problems = UnsupportedCollector(f"{graph.path}", "SameDiff ops are listed in docs/inference.md")
    # names of graph outputs are claimed first so no intermediate value takes them
    for name in wanted:
        builder.reserve(name)
    env: dict[str, str] = {}
    ranks = _Ranks(builder)
    for name in sources:
        var = variables.get(name)
        if var is None:
            problems.add(f"variable {name!r}", "is used but not declared in the file")
        elif var.kind is VariableKind.PLACEHOLDER:
            if var.shape is None:
                problems.add(f"placeholder {name!r}", "has no declared shape")
                continue
            dims: list[int | str | None] = [
                d if d >= 0 else (BATCH if i == 0 else f"{name}_{i}")
                for i, d in enumerate(var.shape)
            ]
            env[name] = builder.input(name, _np_dtype(var.dtype, builder.dtype), dims)
            ranks.known[name] = len(dims)
        elif var.array is not None:
            env[name] = builder.initializer(var.array, name)
            ranks.known[env[name]] = var.array.ndim
        else:
            problems.add(f"variable {name!r} ({var.kind})", "has no stored value")
    for op in ops:
        what = f"op {op.name!r} ({op.op_name or f'{op.op_type} op number {op.op_num}'})"
        converter = registry.get(op.op_name)
        if _is_loss(op, loss):
            problems.add(what, "loss ops are training-only; ask for the loss's inputs instead")
            continue
        if converter is None:
            problems.add(what, "no ONNX converter for this SameDiff op")
            continue
        if any(i not in env for i in op.inputs):
            continue  # downstream of an unsupported op: only its name is checked
        out_var = variables.get(op.outputs[0]) if op.outputs else None
        dtype = builder.dtype if out_var is None else _np_dtype(out_var.dtype, builder.dtype)
        cx = OpContext(
            builder,
            op,
            [env[i] for i in op.inputs],
            static=lambda n: variables[n].array if n in variables else None,
            rank=ranks,
            dtype=dtype,
        )
        try:
            results = converter(cx)
        except Unsupported as exc:
            problems.add(what, str(exc))
            continue
        if len(results) < len(op.outputs):
            problems.add(what, f"produced {len(results)} of its {len(op.outputs)} outputs")
            continue
        env.update(zip(op.outputs, results, strict=False))
    problems.raise_if_any()
    _add_outputs(builder, wanted, env, variables, ranks)
    return builder.build()


def _resolve_outputs(graph: SameDiffGraph, outputs: str | Sequence[str] | None) -> list[str]:
    if outputs is None:
        wanted = list(default_outputs(graph))
        if not wanted:
            raise LoadError(f"{graph.path}: the SameDiff graph has no outputs to compute")
        return wanted
    wanted = [outputs] if isinstance(outputs, str) else list(outputs)
    names = {v.name for v in graph.variables}
    unknown = [o for o in wanted if o not in names]
    if unknown:
        raise ValueError(
            f"{graph.path}: no variable named {', '.join(map(repr, unknown))} in the SameDiff graph"
        )
    if not wanted:
        raise ValueError(f"{graph.path}: no outputs requested")
    return list(dict.fromkeys(wanted))


def _add_outputs(
    builder: OnnxBuilder,
    wanted: Sequence[str],
    env: dict[str, str],
    variables: dict[str, Any],
    ranks: _Ranks,
) -> None:
    from onnx import helper

    from omnihub.convert._builder import elem_type

    for name in wanted:
        value = env[name]
        shape = [None] * ranks(value)
        # the computed type (e.g. int64 for argmax) wins over the file's declared one
        etype = ranks.elem_types.get(value) or elem_type(
            _np_dtype(variables[name].dtype, builder.dtype)
        )
        builder.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        builder.outputs.append(helper.make_tensor_value_info(name, etype, shape))


def _converters() -> dict[str, Converter]:
    """Every op converter, by SameDiff op name: importing the modules that define them fills
    the registry (they import the registry, never this driver)."""
    from omnihub.convert import (  # noqa: F401  (imported for their registrations)
        _samediff_cnn,
        _samediff_elementwise,
        _samediff_lstm,
        _samediff_tensor,
    )
    from omnihub.convert._samediff_ops import OPS

    return OPS
