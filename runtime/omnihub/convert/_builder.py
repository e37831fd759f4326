"""``OnnxBuilder``: the one place that creates ONNX graphs for every converter.

It hands out fresh value names, keeps weights in the file's own dtype (FLOAT, DOUBLE or
FLOAT16) and copies each weight exactly once (numpy array -> ``raw_data`` bytes), and runs
``onnx.checker.check_model(full_check=True)`` on what it builds. The project's single opset is
:data:`OPSET`.

onnxruntime's CPU provider has no DOUBLE kernels for a few ops (Conv, ConvTranspose,
AveragePool, LpPool, LRN, Erf); :meth:`OnnxBuilder.node` runs those in FLOAT between two Cast
nodes when the model computes in DOUBLE, so a DOUBLE model still runs everywhere (its weights
stay DOUBLE initializers; precision of those ops is float32's, ~1e-7 relative).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import onnx

__all__ = ["BATCH", "OPSET", "OnnxBuilder", "elem_type"]

#: The ONNX opset of every model omnihub builds (supported by onnxruntime and onnx.reference).
OPSET = 18
#: The symbolic name of the batch dimension of every graph input and output.
BATCH = "batch"

#: Ops that onnxruntime's CPU provider cannot run in DOUBLE: computed in FLOAT instead.
_NO_DOUBLE_KERNEL = frozenset({"Conv", "ConvTranspose", "AveragePool", "LpPool", "LRN", "Erf"})


def elem_type(dtype: npt.DTypeLike) -> int:
    """The ONNX ``TensorProto`` element type of a numpy dtype."""
    import numpy as np
    from onnx import helper

    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


class OnnxBuilder:
    """Accumulates nodes, initializers, inputs and outputs of one ONNX graph.

    ``dtype`` is the floating type the model computes in (the DL4J file's parameter type):
    :meth:`scalar` and :meth:`constant` create values of that type unless told otherwise.
    """

    def __init__(self, name: str, dtype: npt.DTypeLike) -> None:
        import numpy as np

        self.name = name
        self.dtype: np.dtype[Any] = np.dtype(dtype)
        import onnx

        # Initializers are created in place inside the model (``initializer.add()``): adding
        # a finished TensorProto to a graph would copy its bytes once more.
        self._model = onnx.ModelProto()
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: set[str] = set()
        self._counter = 0
        self._scalars: dict[tuple[str, float], str] = {}

    # -- names ---------------------------------------------------------------------------------

    def fresh(self, hint: str = "v") -> str:
        """A value name not used yet in this graph, based on ``hint``."""
        base = "".join(c if c.isalnum() or c in "_./-" else "_" for c in hint) or "v"
        name = base
        while name in self._used:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> str:
        """Claim an exact name (a graph input or output); ValueError if it is taken."""
        if name in self._used:
            raise ValueError(f"ONNX value name {name!r} is already used")
        self._used.add(name)
        return name

    # -- nodes ---------------------------------------------------------------------------------

    @overload
    def node(
        self, op_type: str, inputs: Sequence[str], outputs: str | None = None, **attrs: Any
    ) -> str: ...

    @overload
    def node(
        self, op_type: str, inputs: Sequence[str], outputs: int | Sequence[str], **attrs: Any
    ) -> list[str]: ...

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: str | int | Sequence[str] | None = None,
        **attrs: Any,
    ) -> str | list[str]:
        """Add one node; return its output name (one output) or names (``outputs`` an int or
        a list). ``""`` in ``inputs`` is an omitted optional input. Attributes equal to None
        are left out."""
        from onnx import helper

        single = outputs is None or isinstance(outputs, str)
        if outputs is None:
            names = [self.fresh(op_type.lower())]
        elif isinstance(outputs, str):
            names = [self.fresh(outputs)]
        elif isinstance(outputs, int):
            names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        else:
            names = [self.fresh(o) for o in outputs]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        if self.dtype.name == "float64" and op_type in _NO_DOUBLE_KERNEL:
            self._in_float(op_type, list(inputs), names, attrs)
        else:
            self.nodes.append(
                helper.make_node(op_type, list(inputs), names, name=names[0], **attrs)
            )
        return names[0] if single else names

    def _in_float(
        self, op_type: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any]
    ) -> None:
        from onnx import TensorProto, helper

        cast_in = [self.cast(i, TensorProto.FLOAT) if i else "" for i in inputs]
        inner = [self.fresh(f"{o}_f32") for o in outputs]
        self.nodes.append(helper.make_node(op_type, cast_in, inner, name=inner[0], **attrs))
        for f, o in zip(inner, outputs, strict=True):
            self.nodes.append(helper.make_node("Cast", [f], [o], name=o, to=TensorProto.DOUBLE))

    def cast(self, value: str, to: int) -> str:
        """``Cast(value, to)`` (``to`` an ONNX element type)."""
        return self.node("Cast", [value], f"{value}_cast", to=to)

    # -- data ----------------------------------------------------------------------------------

    def initializer(self, array: npt.ArrayLike, name: str | None = None) -> str:
        """Add ``array`` as an initializer, keeping its dtype; return its name.

        The bytes are copied once, straight from the (possibly strided) numpy view into the
        tensor's ``raw_data`` in C order: no intermediate contiguous copy.
        """
        import numpy as np
        from onnx import TensorProto

        arr = np.asarray(array)
        if arr.dtype.byteorder == ">":  # ONNX raw_data is little-endian
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        tensor: TensorProto = self._model.graph.initializer.add()
        tensor.name = self.fresh(name or "const")
        tensor.data_type = elem_type(arr.dtype)
        tensor.dims.extend(int(d) for d in arr.shape)
        tensor.raw_data = arr.tobytes(order="C")
        return tensor.name

    def constant(
        self, values: npt.ArrayLike, dtype: npt.DTypeLike | None = None, name: str | None = None
    ) -> str:
        """A small constant (shape vectors, axes, scalars) as an initializer; float values
        default to the model's dtype, integers to int64."""
        import numpy as np

        arr = np.asarray(values)
        if dtype is None:
            dtype = self.dtype if arr.dtype.kind == "f" else np.int64
        return self.initializer(arr.astype(dtype), name or "const")

    def scalar(self, value: float) -> str:
        """A scalar of the model's dtype (shared between uses of the same value)."""
        key = (self.dtype.name, float(value))
        if key not in self._scalars:
            self._scalars[key] = self.constant(float(value), name=f"c_{value:g}")
        return self._scalars[key]

    # -- graph inputs and outputs -----------------------------------------------------------------

    def input(
        self, name: str, dtype: npt.DTypeLike | None, shape: Sequence[int | str | None]
    ) -> str:
        """Declare a graph input: ``shape`` entries are sizes, symbolic names or None."""
        from onnx import helper

        self.reserve(name)
        etype = elem_type(self.dtype if dtype is None else dtype)
        self.inputs.append(helper.make_tensor_value_info(name, etype, list(shape)))
        return name

    def output(
        self,
        value: str,
        name: str,
        dtype: npt.DTypeLike | None = None,
        shape: Sequence[int | str | None] | None = None,
    ) -> str:
        """Expose ``value`` as the graph output ``name`` (through an Identity node)."""
        from onnx import helper

        self.reserve(name)
        self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        etype = elem_type(self.dtype if dtype is None else dtype)
        self.outputs.append(helper.make_tensor_value_info(name, etype, shape))
        return name

    def build(self, opset: int = OPSET, *, validate: bool = True) -> onnx.ModelProto:
        """The ``ModelProto`` (checked with ``check_model(full_check=True)`` by default).

        The builder is spent afterwards: the model owns the initializers.
        """
        model, self._model = self._model, None  # type: ignore[assignment]
        if model is None:
            raise RuntimeError("OnnxBuilder.build() was already called")
        model.ir_version = 8  # what opset 18 needs; onnxruntime >= 1.14 reads it
        model.producer_name = "omnihub"
        opset_id = model.opset_import.add()
        opset_id.domain, opset_id.version = "", opset
        graph = model.graph
        graph.name = self.name
        graph.node.extend(self.nodes)
        graph.input.extend(self.inputs)
        graph.output.extend(self.outputs)
        if validate:
            check(model)
        return model


#: Initializers larger than this are checked by type and shape only (see :func:`check`).
_CHECK_BYTES = 1 << 20


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model(full_check=True)`` without serializing big weights again.

    The checker serializes the whole model; for a model with large weights that is one more
    copy of every weight. So initializers over 1 MiB are replaced, for the check only, by graph
    inputs of the same type and shape (the checker and shape inference see the same graph).
    """
    import onnx
    from onnx import helper

    big = [t for t in model.graph.initializer if len(t.raw_data) > _CHECK_BYTES]
    if not big:
        onnx.checker.check_model(model, full_check=True)
        return
    names = {t.name for t in big}
    graph = helper.make_graph(
        list(model.graph.node),
        model.graph.name,
        [
            *model.graph.input,
            *(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in big),
        ],
        list(model.graph.output),
        initializer=[t for t in model.graph.initializer if t.name not in names],
    )
    skeleton = helper.make_model(graph, opset_imports=list(model.opset_import))
    skeleton.ir_version = model.ir_version
    onnx.checker.check_model(skeleton, full_check=True)
