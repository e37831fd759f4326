"""DL4J loader: read a ``ModelSerializer`` zip into a typed network, no JVM.

A ModelSerializer archive holds ``configuration.json`` (a ``MultiLayerConfiguration`` with
``confs``, or a ``ComputationGraphConfiguration`` with ``vertices``), ``coefficients.bin``
(the flattened parameter vector, ``Nd4j.write``), optionally ``updaterState.bin`` (same
format) and Java-serialized extras (``preprocessor.bin``, ``normalizer.bin``) that are listed
but never deserialized. Both JSON dialects are read: pre-1.0 wrapper objects
(``{"dense": {...}}``) and 1.0+ ``"@class"`` properties; unknown layer types are kept.

Parameters are split per layer into named arrays (DL4J's param-table keys, e.g. ``"0_W"``)
wherever every layer's layout is known, and the total is checked against the configuration.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub._enums import ModelType
from omnihub.errors import LoadError
from omnihub.loaders._dl4j_layers import (
    Dl4jLayer,
    Dl4jVertex,
    inferred_layout,
    layer_type_name,
    param_layout,
)
from omnihub.loaders._javastream import JavaStream, Nd4jArray, StreamError, read_nd4j_array
from omnihub.loaders._sniff import reject_lfs_pointer
from omnihub.loaders._zip import SafeZip

if TYPE_CHECKING:
    import numpy.typing as npt
    import onnx

    from omnihub.catalog import ModelEntry
    from omnihub.convert._run import Session

__all__ = [
    "ComputationGraph",
    "Dl4jLayer",
    "Dl4jNetwork",
    "Dl4jVertex",
    "MultiLayerNetwork",
    "load_dl4j",
    "read_model_serializer",
]

CONFIGURATION = "configuration.json"
COEFFICIENTS = "coefficients.bin"
UPDATER_STATE = "updaterState.bin"
#: The limit on the total uncompressed size of a ModelSerializer archive (vgg19: ~550 MB).
MAX_ARCHIVE_SIZE = 8 * 1024**3


@attrs.frozen(kw_only=True)
class Dl4jNetwork:
    """What both network kinds share: configuration, layers and parameters."""

    path: Path
    configuration: Mapping[str, Any] = attrs.field(eq=False, repr=False)
    layers: tuple[Dl4jLayer, ...]  # in parameter order
    params: npt.NDArray[Any] = attrs.field(eq=False, repr=False)  # the flat parameter vector
    params_data_type: str  # "FLOAT", "HALF", "DOUBLE", ...
    params_allocation_mode: str  # "JAVACPP", "LONG_SHAPE", "MIXED_DATA_TYPES", ...
    updater_state: npt.NDArray[Any] | None = attrs.field(default=None, eq=False, repr=False)
    extra_entries: tuple[str, ...] = ()  # other archive members, never deserialized
    #: The cached inference session (``omnihub.convert._run.cached_session``): a plain dict
    #: so that loading imports nothing of the inference stack.
    _session_slot: dict[str, Any] = attrs.field(init=False, factory=dict, eq=False, repr=False)

    @property
    def param_count(self) -> int:
        """Number of parameters in ``coefficients.bin``."""
        return int(self.params.size)

    @property
    def expected_param_count(self) -> int | None:
        """Parameters the configuration calls for, or None if a layer's layout is unknown."""
        counts = [layer.param_count for layer in self.layers]
        if any(c is None for c in counts):
            return None
        return sum(c for c in counts if c is not None)

    def param_table(self) -> dict[str, npt.NDArray[Any]]:
        """Named parameter arrays (``"<layer>_<param>"``, DL4J's keys), read-only views.

        Raises :class:`LookupError` when a layer's layout is unknown (the vector cannot be
        split past it).
        """
        table: dict[str, npt.NDArray[Any]] = {}
        offset = 0
        for layer in self.layers:
            if layer.param_layout is None:
                raise LookupError(f"layer {layer.name!r} ({layer.type}) has an unknown layout")
            for pname, shape, order in layer.param_layout:
                size = 1
                for dim in shape:
                    size *= dim
                flat = self.params[offset : offset + size]
                view = flat.reshape(shape, order="F" if order == "f" else "C")
                table[f"{layer.name}_{pname}"] = view
                offset += size
        return table


@attrs.frozen(kw_only=True)
class MultiLayerNetwork(Dl4jNetwork):
    """A DL4J ``MultiLayerNetwork``: a stack of layers."""

    def to_onnx(self) -> onnx.ModelProto:
        """The network as ONNX: input ``"input"``, output ``"output"``, dynamic batch,
        weights in the file's dtype. :class:`LoadError` lists every unsupported layer."""
        from omnihub.convert._dl4j_mln import network_to_onnx

        return network_to_onnx(self)

    def output(self, x: npt.ArrayLike) -> npt.NDArray[Any]:
        """DL4J's ``net.output(x)`` (inference mode): run the converted model on ``x``.

        The session is built on the first call and reused. ``x`` is cast to the network's
        dtype; a wrong rank or feature size raises :class:`ValueError` naming the expected
        shape.
        """
        session = self._session_slot.get("mln")
        if session is None:
            from omnihub.convert._run import cached_session

            session = cached_session(self._session_slot, self.to_onnx, self.path)
            self._session_slot["mln"] = session
        result: npt.NDArray[Any] = session.run_one(x)
        return result


@attrs.frozen(kw_only=True)
class ComputationGraph(Dl4jNetwork):
    """A DL4J ``ComputationGraph``: named vertices wired by ``vertexInputs``."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    vertices: tuple[Dl4jVertex, ...] = ()  # in topological (parameter) order

    def to_onnx(self) -> onnx.ModelProto:
        """The graph as ONNX: DL4J's input names, outputs named after the output vertices,
        dynamic batch, weights in the file's dtype. :class:`LoadError` lists every
        unsupported layer or vertex."""
        from omnihub.convert._dl4j_graph import graph_to_onnx

        return graph_to_onnx(self)

    def _graph_session(self) -> Session:
        """The cached session (built by the first call; kept under its own key so later calls
        skip the runner's lookup, as MultiLayerNetwork.output does)."""
        session: Session | None = self._session_slot.get("graph")
        if session is None:
            from omnihub.convert._run import cached_session

            session = cached_session(self._session_slot, self.to_onnx, self.path)
            self._session_slot["graph"] = session
        return session

    def output(self, *inputs: npt.ArrayLike) -> list[npt.NDArray[Any]]:
        """DL4J's ``graph.output(inputs...)`` (inference mode): one array per network output.

        Inputs are given in ``self.inputs`` order, cast to the network's dtype; a wrong count,
        rank or feature size raises :class:`ValueError` naming the expected shape. The session
        is built on the first call and reused.
        """
        if len(inputs) != len(self.inputs):
            raise ValueError(
                f"{self.path}: the graph takes {len(self.inputs)} input(s) "
                f"({', '.join(self.inputs)}), got {len(inputs)}"
            )
        session = self._graph_session()
        if len(inputs) == 1 and len(self.outputs) == 1:
            return [session.run_one(inputs[0])]
        return list(session.run(dict(zip(self.inputs, inputs, strict=True))).values())

    def output_single(self, *inputs: npt.ArrayLike) -> npt.NDArray[Any]:
        """DL4J's ``outputSingle``: the only output (ValueError if the graph has several)."""
        if len(self.outputs) != 1:
            raise ValueError(
                f"{self.path}: output_single needs a graph with one output, this one has "
                f"{len(self.outputs)} ({', '.join(self.outputs)})"
            )
        return self.output(*inputs)[0]


# -- configuration -----------------------------------------------------------------------------


class _ConfigError(ValueError):
    pass


def _unwrap(obj: object, what: str) -> tuple[str, str | None, Mapping[str, Any]]:
    """(type name, @class or None, body) of a polymorphic object in either dialect."""
    if not isinstance(obj, dict):
        raise _ConfigError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    class_name = obj.get("@class")
    if isinstance(class_name, str):
        return layer_type_name(class_name), class_name, obj
    if len(obj) == 1:
        key, body = next(iter(obj.items()))
        if isinstance(body, dict):
            return layer_type_name(key), None, body
    raise _ConfigError(f"{what}: neither an '@class' object nor a one-key wrapper object")


def _layer(name: str, layer_json: object, variables: object, what: str) -> Dl4jLayer:
    type_name, class_name, body = _unwrap(layer_json, what)
    if type_name in ("FrozenLayer", "FrozenLayerWithBackprop") and "layer" in body:
        inner = _layer(name, body["layer"], variables, f"{what}.layer")
        return attrs.evolve(inner, type=f"{type_name}({inner.type})", class_name=class_name)
    layout = param_layout(type_name, body)
    inferred = False
    if layout is None:
        layout = inferred_layout(body, variables)
        inferred = layout is not None
    n_in, n_out = body.get("nin", body.get("nIn")), body.get("nout", body.get("nOut"))
    layer_name = body.get("layerName")
    return Dl4jLayer(
        name=name,
        layer_name=layer_name if isinstance(layer_name, str) else None,
        type=type_name,
        class_name=class_name,
        config=body,
        n_in=n_in if isinstance(n_in, int) else None,
        n_out=n_out if isinstance(n_out, int) else None,
        param_layout=None if layout is None else tuple(layout),
        layout_inferred=inferred,
    )


def _mln_layers(config: Mapping[str, Any]) -> tuple[Dl4jLayer, ...]:
    confs = config["confs"]
    if not isinstance(confs, list):
        raise _ConfigError("confs: expected a list")
    layers = []
    for i, conf in enumerate(confs):
        if not isinstance(conf, dict) or "layer" not in conf:
            raise _ConfigError(f"confs[{i}]: expected an object with a 'layer'")
        layers.append(_layer(str(i), conf["layer"], conf.get("variables"), f"confs[{i}].layer"))
    return tuple(layers)


def _topological_order(
    inputs: list[str], names: list[str], vertex_inputs: Mapping[str, list[str]]
) -> list[str]:
    """DL4J's ``topologicalSortOrder``: Kahn's algorithm over indices (inputs, then vertices
    in configuration order), FIFO, successors in ascending index order."""
    index = {n: i for i, n in enumerate([*inputs, *names])}
    incoming: dict[int, set[int]] = {i: set() for i in range(len(index))}
    outgoing: dict[int, set[int]] = {i: set() for i in range(len(index))}
    for vertex, sources in vertex_inputs.items():
        if vertex not in index:
            raise _ConfigError(f"vertexInputs: unknown vertex {vertex!r}")
        for source in sources:
            if source not in index:
                raise _ConfigError(f"vertexInputs[{vertex!r}]: unknown input {source!r}")
            incoming[index[vertex]].add(index[source])
            outgoing[index[source]].add(index[vertex])
    queue = deque(i for i in range(len(index)) if not incoming[i])
    order: list[int] = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for succ in sorted(outgoing[node]):
            incoming[succ].discard(node)
            if not incoming[succ]:
                queue.append(succ)
    if len(order) != len(index):
        raise _ConfigError("vertexInputs: the graph has a cycle")
    by_index = [*inputs, *names]
    return [by_index[i] for i in order if i >= len(inputs)]


def _string_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _ConfigError(f"{what}: expected a list of strings")
    return list(value)


def _cg_vertices(config: Mapping[str, Any]) -> tuple[list[str], list[str], list[Dl4jVertex]]:
    raw_vertices = config["vertices"]
    if not isinstance(raw_vertices, dict):
        raise _ConfigError("vertices: expected an object")
    inputs = _string_list(config.get("networkInputs", []), "networkInputs")
    outputs = _string_list(config.get("networkOutputs", []), "networkOutputs")
    raw_inputs = config.get("vertexInputs", {})
    if not isinstance(raw_inputs, dict):
        raise _ConfigError("vertexInputs: expected an object")
    vertex_inputs = {k: _string_list(v, f"vertexInputs[{k!r}]") for k, v in raw_inputs.items()}
    order = _topological_order(inputs, list(raw_vertices), vertex_inputs)
    vertices = []
    for name in order:
        what = f"vertices[{name!r}]"
        type_name, class_name, body = _unwrap(raw_vertices[name], what)
        layer = None
        if type_name == "LayerVertex":
            layer_conf = body.get("layerConf")
            if not isinstance(layer_conf, dict) or "layer" not in layer_conf:
                raise _ConfigError(f"{what}.layerConf: expected an object with a 'layer'")
            layer = _layer(
                name, layer_conf["layer"], layer_conf.get("variables"), f"{what}.layerConf.layer"
            )
        vertices.append(
            Dl4jVertex(
                name=name,
                type=type_name,
                class_name=class_name,
                inputs=tuple(vertex_inputs.get(name, [])),
                layer=layer,
                config=body,
            )
        )
    return inputs, outputs, vertices


# -- loading ------------------------------------------------------------------------------------


def _read_array(data: bytes, member: str, path: Path) -> Nd4jArray:
    stream = JavaStream(data, member)
    try:
        array = read_nd4j_array(stream)
    except StreamError as exc:
        raise LoadError(f"{path}: {exc}") from exc
    return array


def read_model_serializer(path: Path) -> MultiLayerNetwork | ComputationGraph:
    """Read a ModelSerializer zip; :class:`LoadError` names the file and what was wrong."""
    path = Path(path)
    reject_lfs_pointer(path, "DL4J")
    with SafeZip(path, max_total_size=MAX_ARCHIVE_SIZE) as archive:
        for member in (CONFIGURATION, COEFFICIENTS):
            if member not in archive:
                raise LoadError(
                    f"{path}: not a DL4J ModelSerializer archive: no {member} "
                    f"(members: {', '.join(archive.names()) or 'none'})"
                )
        try:
            config = json.loads(archive.read(CONFIGURATION))
        except (ValueError, RecursionError) as exc:
            raise LoadError(f"{path}: {CONFIGURATION} is not valid JSON: {exc}") from exc
        coefficients = _read_array(archive.read(COEFFICIENTS), COEFFICIENTS, path)
        updater = None
        if UPDATER_STATE in archive:
            updater = _read_array(archive.read(UPDATER_STATE), UPDATER_STATE, path).array
        extras = tuple(
            n for n in archive.names() if n not in (CONFIGURATION, COEFFICIENTS, UPDATER_STATE)
        )
    if not isinstance(config, dict):
        raise LoadError(f"{path}: {CONFIGURATION}: expected a JSON object")
    params = coefficients.array.reshape(
        -1, order="F" if coefficients.shape_info.order == "f" else "C"
    )
    common: dict[str, Any] = {
        "path": path,
        "configuration": config,
        "params": params,
        "params_data_type": coefficients.data_type,
        "params_allocation_mode": coefficients.allocation_mode,
        "updater_state": None if updater is None else updater.reshape(-1),
        "extra_entries": extras,
    }
    network: MultiLayerNetwork | ComputationGraph
    try:
        if "confs" in config:
            network = MultiLayerNetwork(layers=_mln_layers(config), **common)
        elif "vertices" in config:
            inputs, outputs, vertices = _cg_vertices(config)
            layers = tuple(v.layer for v in vertices if v.layer is not None)
            network = ComputationGraph(
                layers=layers,
                inputs=tuple(inputs),
                outputs=tuple(outputs),
                vertices=tuple(vertices),
                **common,
            )
        else:
            raise _ConfigError(
                "neither 'confs' (MultiLayerNetwork) nor 'vertices' (ComputationGraph)"
            )
    except (_ConfigError, KeyError, TypeError, RecursionError) as exc:
        raise LoadError(f"{path}: {CONFIGURATION}: {exc}") from exc
    expected = network.expected_param_count
    if expected is not None and expected != network.param_count:
        raise LoadError(
            f"{path}: {COEFFICIENTS} holds {network.param_count} parameters, the configuration "
            f"needs {expected}"
        )
    return network


def load_dl4j(entry: ModelEntry, path: Path) -> MultiLayerNetwork | ComputationGraph:
    """The ``dl4j`` format's loader; checks the file's network kind against ``model_type``."""
    network = read_model_serializer(path)
    wanted = {
        ModelType.COMP_GRAPH: ComputationGraph,
        ModelType.SEQUENTIAL: MultiLayerNetwork,
    }.get(entry.model_type)
    if wanted is not None and not isinstance(network, wanted):
        raise LoadError(
            f"{path}: model {entry.name!r} is declared {entry.model_type} ({wanted.__name__}) "
            f"but the file holds a {type(network).__name__}"
        )
    return network
