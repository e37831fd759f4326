"""DL4J networks -> ONNX: the layer-converter registry and the types converters share.

A *layer converter* is a function ``(ctx: LayerContext, x: Activations) -> Activations``: it
reads the layer's configuration and parameters from ``ctx``, emits ONNX nodes with
``ctx.b`` (an :class:`~omnihub.convert._builder.OnnxBuilder`) and returns the layer's output.
:class:`Activations` says what flows between layers: the ONNX value name, its kind (``FF``
``[N, F]``; ``CNN`` ``[N, C, H, W]`` or NHWC; ``CNN3D``; ``RNN`` ``[N, C, T]`` or NWC), its
layout and its feature/channel size.

Converters are found by the layer's class: first those registered with
:func:`register_layer` (by full ``@class`` name or simple name), then the ``omnihub.layers``
entry points (name = class name, value = ``module:function``), then the built-ins (DL4J's own
classes only, so ``com.example.DenseLayer`` never gets DL4J's Dense converter).

The driver (:mod:`omnihub.convert._dl4j_mln`) checks every layer first and converts nothing
if some have no converter: one :class:`~omnihub.errors.LoadError` lists them all. A converter
raising :class:`~omnihub.convert._errors.Unsupported` (an option it cannot express) is
collected the same way.
"""

from __future__ import annotations

import _thread
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from omnihub.convert._activations import apply_activation
from omnihub.convert._errors import Unsupported, UnsupportedCollector

if TYPE_CHECKING:
    import numpy.typing as npt

    from omnihub.convert._builder import OnnxBuilder
    from omnihub.loaders.dl4j import Dl4jLayer, Dl4jNetwork

__all__ = [
    "ENTRY_POINT_GROUP",
    "Activations",
    "Kind",
    "LayerContext",
    "LayerConverter",
    "converter_for",
    "layer_converter",
    "register_layer",
]

#: The importlib.metadata entry point group of third-party layer converters.
ENTRY_POINT_GROUP = "omnihub.layers"

Kind = Literal["FF", "CNN", "CNN3D", "RNN"]

#: The layout of each kind when the configuration does not say (DL4J's defaults).
DEFAULT_FORMAT: dict[str, str] = {"FF": "NC", "CNN": "NCHW", "CNN3D": "NCDHW", "RNN": "NCW"}


@attrs.frozen
class Activations:
    """What flows from one layer to the next: an ONNX value and how to read it."""

    name: str  # the ONNX value
    kind: Kind
    size: int | None = None  # features (FF), channels (CNN, CNN3D) or RNN size, if known
    format: str = ""  # NC, NCHW/NHWC, NCDHW/NDHWC, NCW/NWC ("" = the kind's default)

    @property
    def layout(self) -> str:
        """The format, defaulted by kind."""
        return self.format or DEFAULT_FORMAT[self.kind]

    @property
    def channel_axis(self) -> int:
        """The axis of features/channels: 1, or the last one for NHWC/NDHWC/NWC."""
        return -1 if self.layout in ("NHWC", "NDHWC", "NWC") else 1

    def with_name(self, name: str, size: int | None = None) -> Activations:
        """The same kind and layout for a new value (and size, if given)."""
        return attrs.evolve(self, name=name, size=self.size if size is None else size)


LayerConverter = Callable[["LayerContext", Activations], Activations]


@attrs.frozen
class _Entry:
    convert: LayerConverter
    accepts: Kind | None  # the kind of input the layer takes; None: any


class LayerContext:
    """What a converter sees: the builder, the layer and its parameters, and helpers."""

    def __init__(
        self,
        b: OnnxBuilder,
        layer: Dl4jLayer,
        params: Mapping[str, npt.NDArray[Any]],
        batch: Callable[[], str],
    ) -> None:
        self.b = b
        self.layer = layer
        self.params = params  # "W", "b", ... (DL4J's param keys, without the layer prefix)
        self._batch = batch

    @property
    def config(self) -> Mapping[str, Any]:
        """The layer's JSON configuration."""
        return self.layer.config

    @property
    def prefix(self) -> str:
        """A readable name prefix for this layer's values."""
        return self.layer.layer_name or f"layer{self.layer.name}"

    def batch_size(self) -> str:
        """A 1-D int64 ONNX value holding the minibatch size (for reshapes that need it)."""
        return self._batch()

    def weight(self, key: str, array: npt.ArrayLike | None = None) -> str:
        """The parameter ``key`` (or ``array``, e.g. a transposed view of it) as an
        initializer, in the file's dtype."""
        if array is None:
            if key not in self.params:
                raise Unsupported(f"has no parameter {key!r} (has: {', '.join(self.params)})")
            array = self.params[key]
        return self.b.initializer(array, f"{self.prefix}_{key}")

    def has_param(self, key: str) -> bool:
        """Whether the layer has the parameter ``key``."""
        return key in self.params

    def activation(self, x: str, key: str = "activationFn", *, axis: int = 1) -> str:
        """Apply the activation stored under ``key`` (0.x: ``activationFunction``)."""
        spec = self.config.get(key)
        if spec is None and key == "activationFn":
            spec = self.config.get("activationFunction")
        return apply_activation(self.b, x, spec, axis=axis)

    def dense(self, x: str, w: str = "W", bias: str = "b") -> str:
        """``x @ W + b`` (the bias only if the layer has one).

        DL4J stores ``W`` ``[nIn, nOut]`` in 'f' order, so ``W.T`` is a C-contiguous view: it
        becomes the initializer (``[nOut, nIn]``, one copy, no transposed temporary) of a
        ``Gemm(transB=1)``.
        """
        weight = self.params.get(w)
        biases = [self.weight(bias)] if self.has_param(bias) else []
        if weight is not None and weight.ndim == 2 and weight.T.flags.c_contiguous:
            inputs = [x, self.weight(w, weight.T), *biases]
            return self.b.node("Gemm", inputs, f"{self.prefix}_gemm", transB=1)
        y = self.b.node("MatMul", [x, self.weight(w)], f"{self.prefix}_matmul")
        return self.b.node("Add", [y, *biases], f"{self.prefix}_add") if biases else y

    def split(self, x: str, sizes: list[int], axis: int = 1) -> list[str]:
        """Split ``x`` along ``axis`` into pieces of the given sizes."""
        return self.b.node("Split", [x, self.b.constant(sizes)], len(sizes), axis=axis)

    def concat(self, xs: list[str], axis: int = 1) -> str:
        """Concatenate along ``axis``."""
        return self.b.node("Concat", xs, axis=axis)

    def ff(self, name: str, size: int | None = None) -> Activations:
        """A feed-forward output ``[N, size]`` (size defaults to the layer's nOut)."""
        return Activations(name, "FF", self.layer.n_out if size is None else size, "NC")

    def config_int(self, key: str, default: int | None = None) -> int:
        """An integer setting; Unsupported if absent and no default."""
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unsupported(f"setting {key!r} is {value!r}, expected an integer")
        return value

    def config_ints(self, key: str, n: int, default: list[int] | None = None) -> list[int]:
        """An int-array setting of length ``n`` (a single int is repeated)."""
        value = self.config.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value] * n
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise Unsupported(f"setting {key!r} is {value!r}, expected {n} integers")
        if len(value) != n:
            raise Unsupported(f"setting {key!r} is {value!r}, expected {n} integers")
        return [int(v) for v in value]


# -- the registry ---------------------------------------------------------------------------------

_BUILTIN_MODULES = (
    "omnihub.convert._dl4j_ff",
    "omnihub.convert._dl4j_cnn",
    "omnihub.convert._dl4j_rnn",
)


class _Registry:
    """Built-in converters, ``omnihub.layers`` entry points (read once) and API ones."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.builtins: dict[str, _Entry] = {}
        self.api: dict[str, _Entry] = {}
        self.plugins: dict[str, _Entry] | None = None
        self.builtins_loaded = False

    def load_builtins(self) -> None:
        """Import the built-in converter modules (they register themselves)."""
        if self.builtins_loaded:
            return
        import importlib

        for module in _BUILTIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a real missing dependency, not an absent module
                    raise
        self.builtins_loaded = True

    def entry_points(self) -> dict[str, _Entry]:
        """The ``omnihub.layers`` entry points; broken ones are warned about and skipped."""
        if self.plugins is not None:
            return self.plugins
        found: dict[str, _Entry] = {}
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                fn = ep.load()
                if not callable(fn):
                    raise TypeError("not callable")
            except Exception as exc:  # a plugin may fail in any way; report, keep going
                import warnings

                warnings.warn(
                    f"omnihub: ignoring layer converter entry point {ep.name!r} "
                    f"({ep.value}): {exc}",
                    RuntimeWarning,
                    stacklevel=4,
                )
                continue
            found[ep.name] = _Entry(fn, getattr(fn, "accepts", "FF"))
        with self.lock:
            self.plugins = found
        return found

    def reset(self) -> None:
        """Forget API registrations and re-read entry points on next use (for tests)."""
        with self.lock:
            self.api.clear()
            self.plugins = None


_registry = _Registry()


def layer_converter(
    *type_names: str, accepts: Kind | None = None
) -> Callable[[LayerConverter], LayerConverter]:
    """Decorator for the built-in converters: registers ``fn`` for DL4J's own classes."""

    def decorate(fn: LayerConverter) -> LayerConverter:
        for name in type_names:
            _registry.builtins[name] = _Entry(fn, accepts)
        return fn

    return decorate


def register_layer(class_name: str, fn: LayerConverter, *, accepts: Kind | None = "FF") -> None:
    """Register ``fn`` as the converter of the DL4J layer class ``class_name``.

    ``class_name`` is the layer's ``@class`` (``"com.example.MyLayer"``) or its simple name;
    ``accepts`` is the kind of input the layer takes (``"FF"``, ``"CNN"``, ``"CNN3D"``,
    ``"RNN"``, or None for any): the network's input shape and the implicit preprocessors
    follow from it. A later registration replaces an earlier one; registrations override
    entry points and built-ins. (An entry point's function may carry an ``accepts``
    attribute; the default is ``"FF"``.)
    """
    if not class_name or not callable(fn):
        raise TypeError("register_layer(class_name, fn): a non-empty name and a callable")
    with _registry.lock:
        _registry.api[class_name] = _Entry(fn, accepts)


def unregister_layer(class_name: str) -> None:
    """Forget an API registration (no error if there is none)."""
    with _registry.lock:
        _registry.api.pop(class_name, None)


def reset_registry() -> None:
    """Forget API registrations and re-read entry points on next use (for tests)."""
    _registry.reset()


_FROZEN = re.compile(r"^Frozen\w*\((.+)\)$")


def _lookup(layer: Dl4jLayer) -> _Entry | None:
    simple = layer.type
    frozen = _FROZEN.match(simple)
    if frozen:  # FrozenLayer(DenseLayer): inference is the wrapped layer's
        simple = frozen.group(1)
    class_name = None if frozen else layer.class_name
    keys = [k for k in (class_name, simple) if k]
    for table in (_registry.api, _registry.entry_points()):
        for key in keys:
            if key in table:
                return table[key]
    if class_name is not None and not class_name.startswith("org.deeplearning4j."):
        return None  # a user's class: never a built-in by simple name
    _registry.load_builtins()
    return _registry.builtins.get(simple)


def converter_for(layer: Dl4jLayer) -> LayerConverter | None:
    """The converter for ``layer``, or None."""
    entry = _lookup(layer)
    return None if entry is None else entry.convert


def describe(layer: Dl4jLayer) -> str:
    """``layer 1 'dense' (org.deeplearning4j...DenseLayer)`` for messages."""
    named = f" {layer.layer_name!r}" if layer.layer_name else ""
    return f"layer {layer.name}{named} ({layer.class_name or layer.type})"


_REGISTER_HINT = (
    "Register a converter with omnihub.convert.register_layer(class_name, fn) or the "
    "'omnihub.layers' entry point group (see docs/inference.md)"
)


# -- the MultiLayerNetwork driver ---------------------------------------------------------------


def _layer_params(
    network: Dl4jNetwork, problems: UnsupportedCollector
) -> dict[str, dict[str, npt.NDArray[Any]]]:
    """``{layer name: {param key: view}}`` for every layer whose layout is known."""
    try:
        table = network.param_table()
    except LookupError:
        table = {}
        offset = 0
        for layer in network.layers:
            if layer.param_layout is None:
                problems.add(describe(layer), "its parameter layout is unknown")
                break
            for pname, shape, order in layer.param_layout:
                size = 1
                for dim in shape:
                    size *= dim
                flat = network.params[offset : offset + size]
                table[f"{layer.name}_{pname}"] = flat.reshape(
                    shape, order="F" if order == "f" else "C"
                )
                offset += size
    per_layer: dict[str, dict[str, npt.NDArray[Any]]] = {}
    for layer in network.layers:
        prefix = f"{layer.name}_"
        per_layer[layer.name] = {
            k[len(prefix) :]: v for k, v in table.items() if k.startswith(prefix)
        }
    return per_layer


def model_dtype(network: Dl4jNetwork) -> Any:
    """The numpy dtype the model computes in: the parameters' (float32 for non-floats)."""
    import numpy as np

    dtype = np.dtype(network.params.dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


def input_shape(kind: Kind, size: int | None, layout: str) -> list[int | str | None]:
    """The ONNX input shape of a network input of ``kind`` (batch and spatial symbolic)."""
    from omnihub.convert._builder import BATCH

    spatial = {"CNN": ["height", "width"], "CNN3D": ["depth", "height", "width"]}
    if kind == "FF":
        return [BATCH, size]
    if kind == "RNN":
        return [BATCH, "time", size] if layout == "NWC" else [BATCH, size, "time"]
    dims: list[int | str | None] = list(spatial[kind])
    return [BATCH, *dims, size] if layout in ("NHWC", "NDHWC") else [BATCH, size, *dims]


#: The keys DL4J's layer classes store their data format under, by input kind.
_FORMAT_KEYS: dict[str, tuple[str, ...]] = {
    "CNN": ("cnn2dDataFormat", "dataFormat", "format", "cnn2DFormat"),
    "RNN": ("rnnDataFormat",),
    "CNN3D": ("dataFormat",),
}
_FORMATS: dict[str, tuple[str, ...]] = {
    "CNN": ("NCHW", "NHWC"),
    "RNN": ("NCW", "NWC"),
    "CNN3D": ("NCDHW", "NDHWC"),
}


def layer_format(layer: Dl4jLayer, kind: Kind) -> str:
    """The data format a layer declares for its input kind (DL4J's defaults otherwise)."""
    for key in _FORMAT_KEYS.get(kind, ()):
        value = layer.config.get(key)
        if isinstance(value, str) and value.upper() in _FORMATS[kind]:
            return value.upper()
    return DEFAULT_FORMAT[kind]


def input_rank(x: Activations) -> list[None]:
    """One entry per axis of ``x`` (FF 2, RNN 3, CNN 4, CNN3D 5)."""
    return [None] * {"FF": 2, "RNN": 3, "CNN": 4, "CNN3D": 5}[x.kind]
