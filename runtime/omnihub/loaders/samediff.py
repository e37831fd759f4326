"""SameDiff loader: read a FlatBuffers ``FlatGraph`` (``.fb``) into a typed graph, no JVM.

The schema is libnd4j's ``graph/scheme/*.fbs`` (namespace ``sd.graph``). Slot numbers below are
the field order of those tables. Arrays (``FlatArray``) carry an ND4J shape-info vector and an
inline buffer in the byte order the array declares (SameDiff writes big-endian); weights come
back as read-only, native-endian numpy arrays.

The newer ``.sdnb`` container (32-byte header ``SDNB``, large arrays appended and indexed by a
Java-serialized manifest) and its zip form ``.sdz`` are detected and rejected with a clear
"unsupported format" :class:`~omnihub.errors.LoadError`: reading their manifest would mean
deserializing Java objects, and a guessed layout could silently misparse weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.errors import LoadError
from omnihub.loaders._flat import FlatError, FlatTable, root_table
from omnihub.loaders._nd4j import NUMPY_DTYPES, ShapeInfoError, parse_shape_info
from omnihub.loaders._samediff_enums import DTYPE_NAMES, OP_TYPE_NAMES, VariableKind
from omnihub.loaders._sniff import reject_lfs_pointer

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import onnx

    from omnihub.catalog import ModelEntry

__all__ = [
    "SDNB_MAGIC",
    "SameDiffGraph",
    "SameDiffOp",
    "SameDiffVariable",
    "UpdaterState",
    "VariableKind",
    "load_samediff",
    "read_flatgraph",
]

#: First four bytes of the ``.sdnb`` container (ADR 0035).
SDNB_MAGIC = b"SDNB"
_ZIP_MAGIC = b"PK\x03\x04"


_VAR_KINDS = (
    VariableKind.VARIABLE,
    VariableKind.CONSTANT,
    VariableKind.ARRAY,
    VariableKind.PLACEHOLDER,
    VariableKind.SEQUENCE,
)


@attrs.frozen(kw_only=True)
class SameDiffVariable:
    """One ``FlatVariable``: its name, kind, data type, shape and (if stored) its value."""

    name: str
    kind: VariableKind
    dtype: str  # an ``sd.graph.DType`` name, e.g. "FLOAT"
    shape: tuple[int, ...] | None  # None when unknown; -1 marks a dimension fixed at run time
    id: tuple[int, int]  # (node id, output index)
    array: npt.NDArray[Any] | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class SameDiffOp:
    """One ``FlatNode``: an operation with named inputs and outputs and its arguments."""

    name: str
    op_name: str  # e.g. "mmul", "relu"
    op_type: str  # an ``sd.graph.OpType`` name, e.g. "CUSTOM"
    op_num: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    float_args: tuple[float, ...] = ()
    int_args: tuple[int, ...] = ()
    bool_args: tuple[bool, ...] = ()
    dimensions: tuple[int, ...] = ()
    string_args: tuple[str, ...] = ()
    properties: Mapping[str, tuple[object, ...]] = attrs.field(factory=dict)
    #: A legacy scalar op's scalar operand (e.g. the alpha of ``leakyrelu``), if stored.
    scalar: npt.NDArray[Any] | None = attrs.field(default=None, eq=False, repr=False)
    #: dArgs: data type arguments (``sd.graph.DType`` names), e.g. the target of ``cast``.
    dtype_args: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class UpdaterState:
    """The optimizer state stored for one parameter (e.g. Adam's "M" and "V")."""

    param_name: str
    state: Mapping[str, npt.NDArray[Any] | None] = attrs.field(eq=False)


@attrs.frozen(kw_only=True)
class SameDiffGraph:
    """A SameDiff graph read from a FlatGraph file: variables, ops and stored arrays."""

    path: Path
    variables: tuple[SameDiffVariable, ...]
    ops: tuple[SameDiffOp, ...]
    placeholders: tuple[str, ...]
    outputs: tuple[str, ...]
    loss_variables: tuple[str, ...] = ()
    training_config: Mapping[str, Any] | None = attrs.field(default=None, eq=False)
    updater_state: tuple[UpdaterState, ...] = ()
    #: Cached inference sessions, one per requested output set: a plain dict so that loading
    #: imports nothing of the inference stack.
    _session_slot: dict[str, Any] = attrs.field(init=False, factory=dict, eq=False, repr=False)

    def to_onnx(self, outputs: str | Sequence[str] | None = None) -> onnx.ModelProto:
        """The graph as ONNX: placeholders -> inputs, weights -> initializers in their dtype,
        ``outputs`` (default: the graph's outputs, loss variables skipped) -> outputs.

        Only the ops the outputs need are converted; :class:`LoadError` names every
        unsupported one at once.
        """
        from omnihub.convert.samediff import samediff_to_onnx

        return samediff_to_onnx(self, outputs)

    def output(
        self,
        placeholders: Mapping[str, npt.ArrayLike],
        outputs: str | Sequence[str] | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        """SameDiff's ``sd.output(placeholders, outputs)``: ``{variable name: array}``.

        ``outputs=None`` means the graph's outputs (loss variables skipped). Placeholders the
        outputs do not need (e.g. ``label``) may be given and are ignored. The session for an
        output set is built on first use and reused.
        """
        from omnihub.convert._run import cached_session
        from omnihub.convert.samediff import default_outputs

        if outputs is None:  # computed once: a cache hit must cost next to nothing
            names = self._session_slot.get("default outputs")
            if names is None:
                names = self._session_slot.setdefault("default outputs", default_outputs(self))
        else:
            names = outputs
        wanted = (names,) if isinstance(names, str) else tuple(names)
        unknown = [p for p in placeholders if p not in self.placeholders]
        if unknown:
            raise ValueError(
                f"{self.path}: {', '.join(map(repr, unknown))} not a placeholder of the graph "
                f"(placeholders: {', '.join(self.placeholders)})"
            )
        slot = self._session_slot.setdefault("outputs:" + "\x1f".join(wanted), {})
        session = cached_session(slot, lambda: self.to_onnx(wanted), str(self.path))
        needed = {spec.name for spec in session.inputs}
        return session.run({k: v for k, v in placeholders.items() if k in needed})

    def variable(self, name: str) -> SameDiffVariable:
        """The variable called ``name`` (KeyError if there is none)."""
        for var in self.variables:
            if var.name == name:
                return var
        raise KeyError(name)

    def variables_of(self, kind: VariableKind) -> tuple[SameDiffVariable, ...]:
        """The variables of one kind, in file order."""
        return tuple(v for v in self.variables if v.kind is kind)

    @property
    def weights(self) -> dict[str, npt.NDArray[Any]]:
        """Trainable parameters (kind VARIABLE) that have a stored value, by name."""
        return {
            v.name: v.array
            for v in self.variables
            if v.kind is VariableKind.VARIABLE and v.array is not None
        }

    @property
    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Every stored array (weights and constants), by variable name."""
        return {v.name: v.array for v in self.variables if v.array is not None}


# -- parsing -----------------------------------------------------------------------------------


class _Context:
    """Per-file state: the buffer size (for bounds) and the arrays decoded so far, by offset."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.arrays: dict[int, np.ndarray[Any, Any] | None] = {}


def _read_array(table: FlatTable, ctx: _Context) -> npt.NDArray[Any] | None:
    """Decode a ``FlatArray`` (shape info + buffer); None for absent data or string types.

    Arrays are cached by table offset, so a forged file whose many variables point at one
    large array cannot make us allocate more than once per byte of input.
    """
    if table.pos in ctx.arrays:
        return ctx.arrays[table.pos]
    import numpy as np

    dtype_code = table.integer(2, "<b", "dtype")
    dtype_name = DTYPE_NAMES.get(dtype_code)
    if dtype_name is None:
        raise FlatError(f"{table.what}.dtype: unknown data type {dtype_code}")
    byte_order = table.integer(3, "<b", "byteOrder")
    if byte_order not in (0, 1):
        raise FlatError(f"{table.what}.byteOrder: {byte_order} is neither LE (0) nor BE (1)")
    shape_values = table.ints(0, "q", "shape")
    buffer = table.byte_vector(1, "buffer")
    result: np.ndarray[Any, Any] | None = None
    has_data = buffer is not None and len(buffer[1]) > 0
    if shape_values:
        try:
            info = parse_shape_info(
                shape_values,
                max_elements=ctx.size * 8 if has_data else None,
                allow_unknown=not has_data,
            )
        except ShapeInfoError as exc:
            raise FlatError(f"{table.what}.shape: {exc}") from exc
        code = NUMPY_DTYPES.get(dtype_name)
        if buffer is not None and has_data and code is not None:
            offset, data = buffer
            dtype = np.dtype(code).newbyteorder(">" if byte_order == 1 else "<")
            expected = info.length * dtype.itemsize
            if dtype_name == "BOOL":
                expected = info.length
            if len(data) != expected:
                raise FlatError(
                    f"{table.what}.buffer at offset {offset}: {len(data)} bytes, expected "
                    f"{expected} for {dtype_name} shape {list(info.shape)}"
                )
            flat = np.frombuffer(data, dtype=dtype)
            if dtype_name == "BFLOAT16":
                flat = (flat.astype(np.uint32) << 16).view(np.float32)
            native = flat.astype(flat.dtype.newbyteorder("="), copy=True)
            result = native.reshape(info.shape, order="F" if info.order == "f" else "C")
            result.flags.writeable = False
    ctx.arrays[table.pos] = result
    return result


def _var_id(table: FlatTable | None) -> tuple[int, int]:
    if table is None:
        return (0, 0)
    return (table.integer(0, "<i", "first"), table.integer(1, "<i", "second"))


def _read_variable(table: FlatTable, ctx: _Context) -> SameDiffVariable:
    name = table.string(1, "name") or ""
    kind_code = table.integer(6, "<b", "variabletype")
    if not 0 <= kind_code < len(_VAR_KINDS):
        raise FlatError(f"{table.what}.variabletype: unknown variable type {kind_code}")
    dtype_code = table.integer(2, "<b", "dtype")
    dtype = DTYPE_NAMES.get(dtype_code)
    if dtype is None:
        raise FlatError(f"{table.what}.dtype: unknown data type {dtype_code}")
    nd_table = table.table(4, "ndarray")
    array = None if nd_table is None else _read_array(nd_table, ctx)
    shape_values = table.ints(3, "q", "shape")
    shape: tuple[int, ...] | None = None
    if shape_values:
        shape = shape_values
    elif array is not None:
        shape = tuple(int(d) for d in array.shape)
    elif nd_table is not None:
        nd_shape = nd_table.ints(0, "q", "shape")
        if nd_shape:
            try:
                shape = parse_shape_info(nd_shape, max_elements=None, allow_unknown=True).shape
            except ShapeInfoError as exc:
                raise FlatError(f"{nd_table.what}.shape: {exc}") from exc
    return SameDiffVariable(
        name=name,
        kind=_VAR_KINDS[kind_code],
        dtype=dtype,
        shape=shape,
        id=_var_id(table.table(0, "id")),
        array=array,
    )


def _read_properties(table: FlatTable, ctx: _Context) -> tuple[str, tuple[object, ...]]:
    name = table.string(0, "name") or ""
    values: list[object] = []
    values.extend(table.ints(1, "i", "i"))
    values.extend(table.ints(2, "q", "l"))
    values.extend(float(v) for v in table.scalars(3, "d", "d"))
    values.extend(_read_array(a, ctx) for a in table.tables(4, "a"))
    values.extend(bool(v) for v in table.scalars(5, "?", "b"))
    values.extend(table.strings(6, "s"))
    return name, tuple(values)


def _read_op(
    table: FlatTable,
    ctx: _Context,
    names_by_id: Mapping[tuple[int, int], str],
    outputs_by_node: Mapping[int, tuple[str, ...]],
) -> SameDiffOp:
    node_id = table.integer(0, "<i", "id")
    name = table.string(1, "name") or ""
    op_type_code = table.integer(2, "<b", "opType")
    inputs: list[str] = []
    for i, pair in enumerate(table.tables(6, "inputPaired")):
        key = _var_id(pair)
        if key not in names_by_id:
            raise FlatError(f"{pair.what}: input {i} refers to unknown variable id {key}")
        inputs.append(names_by_id[key])
    if not inputs:  # older files list plain node ids instead of (node, output) pairs
        inputs = [names_by_id.get((i, 0), str(i)) for i in table.ints(5, "i", "input")]
    scalar = table.table(18, "scalar")
    outputs = table.strings(15, "outputNames")
    if not outputs:  # older files: the variables whose id is (this node, index)
        outputs = outputs_by_node.get(node_id, ())
    return SameDiffOp(
        name=name,
        op_name=table.string(16, "opName") or "",
        op_type=OP_TYPE_NAMES.get(op_type_code, str(op_type_code)),
        op_num=table.integer(3, "<q", "opNum"),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        float_args=tuple(float(v) for v in table.scalars(8, "d", "extraParams")),
        int_args=table.ints(9, "q", "extraInteger"),
        bool_args=tuple(bool(v) for v in table.scalars(10, "?", "extraBools")),
        dimensions=table.ints(11, "i", "dimensions"),
        string_args=table.strings(23, "extraStrings"),
        properties=dict(_read_properties(p, ctx) for p in table.tables(4, "properties")),
        scalar=None if scalar is None else _read_array(scalar, ctx),
        dtype_args=tuple(
            DTYPE_NAMES.get(code, str(code)) for code in table.ints(22, "b", "extraTypes")
        ),
    )


def _read_updater_state(table: FlatTable, ctx: _Context) -> UpdaterState:
    keys = table.strings(1, "updaterStateKeys")
    values = table.tables(2, "updaterStateValues")
    if len(keys) != len(values):
        raise FlatError(f"{table.what}: {len(keys)} updater state keys but {len(values)} values")
    return UpdaterState(
        param_name=table.string(0, "paramName") or "",
        state={k: _read_array(v, ctx) for k, v in zip(keys, values, strict=True)},
    )


def _parse_graph(buf: bytes, path: Path) -> SameDiffGraph:
    ctx = _Context(len(buf))
    root = root_table(buf, "FlatGraph")
    variables = tuple(_read_variable(t, ctx) for t in root.tables(1, "variables"))
    names_by_id = {v.id: v.name for v in variables}
    grouped: dict[int, list[str]] = {}
    for (node, _index), name in sorted(names_by_id.items()):
        grouped.setdefault(node, []).append(name)
    outputs_by_node = {node: tuple(names) for node, names in grouped.items()}
    ops = tuple(_read_op(t, ctx, names_by_id, outputs_by_node) for t in root.tables(2, "nodes"))
    outputs: list[str] = []
    for pair in root.tables(3, "outputs"):
        key = _var_id(pair)
        outputs.append(names_by_id.get(key, f"{key[0]}:{key[1]}"))
    training_json = root.string(7, "trainingConfig")
    training: Mapping[str, Any] | None = None
    if training_json:
        try:
            training = json.loads(training_json)
        except ValueError as exc:
            raise FlatError(f"FlatGraph.trainingConfig: not valid JSON: {exc}") from exc
        if not isinstance(training, dict):
            raise FlatError("FlatGraph.trainingConfig: expected a JSON object")
    return SameDiffGraph(
        path=path,
        variables=variables,
        ops=ops,
        placeholders=root.strings(5, "placeholders"),
        outputs=tuple(outputs),
        loss_variables=root.strings(6, "lossVariables"),
        training_config=training,
        updater_state=tuple(_read_updater_state(t, ctx) for t in root.tables(8, "updaterState")),
    )


def read_flatgraph(path: Path) -> SameDiffGraph:
    """Read a SameDiff file; raise :class:`LoadError` naming the file and what was wrong."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"{path}: cannot read SameDiff file: {exc}") from exc
    if buf[:4] == SDNB_MAGIC:
        raise LoadError(
            f"{path}: unsupported format: SameDiff .sdnb container (header 'SDNB'); only "
            "FlatBuffers FlatGraph (.fb) files can be read"
        )
    if buf[:4] == _ZIP_MAGIC:
        raise LoadError(
            f"{path}: unsupported format: a zip archive (SameDiff .sdz container?); only "
            "FlatBuffers FlatGraph (.fb) files can be read"
        )
    reject_lfs_pointer(path, "SameDiff", buf)
    if len(buf) < 8:
        raise LoadError(f"{path}: not a SameDiff FlatGraph: only {len(buf)} bytes")
    try:
        graph = _parse_graph(buf, path)
    except FlatError as exc:
        raise LoadError(f"{path}: corrupt SameDiff FlatGraph: {exc}") from exc
    except (ValueError, OverflowError, MemoryError, IndexError) as exc:
        raise LoadError(f"{path}: corrupt SameDiff FlatGraph: {exc}") from exc
    _reject_empty(graph)
    return graph


def _reject_empty(graph: SameDiffGraph) -> None:
    """:class:`LoadError` for a graph with nothing to run or use: no ops, weights or constants.

    Four omnihub-zoo files (bvlcalexnet-12 and caffenet-12, byte-identical; version-RFB-320;
    version-RFB-640) are such upstream placeholders: one input placeholder and its example
    array, nothing else. Returning their empty graph would fail much later, or silently.
    """
    useful = (VariableKind.VARIABLE, VariableKind.CONSTANT)
    if graph.ops or any(v.kind in useful for v in graph.variables):
        return
    held = ", ".join(
        f"{v.kind.value.lower()} {v.name!r} ({v.dtype} {list(v.shape or ())})"
        for v in graph.variables[:4]
    )
    raise LoadError(
        f"{graph.path}: an empty upstream placeholder, not a model: the FlatGraph holds "
        f"{'only ' + held if held else 'no variables'}, and no ops, weights or constants; "
        "the file was published this way upstream and there is nothing to load"
    )


def load_samediff(entry: ModelEntry, path: Path) -> SameDiffGraph:
    """The ``samediff`` format's loader (registered in :mod:`omnihub.loaders._registry`)."""
    return read_flatgraph(path)
