"""Running a converted model: one cached session per loaded object, inputs checked first.

Every runnable object (``MultiLayerNetwork``, ``ComputationGraph``, ``SameDiffGraph``) owns a
:class:`Runner` slot. The first ``output(...)`` call converts the model, serializes it and
builds an onnxruntime ``InferenceSession`` from the bytes; later calls reuse it (the lock
makes concurrent first calls build it once; onnxruntime's ``run`` is itself thread-safe).
Without onnxruntime the runner falls back to ``onnx.reference.ReferenceEvaluator``, with a
one-line warning.

Inputs are checked against the ONNX graph inputs before anything runs: a missing or unknown
name, a wrong rank or a wrong fixed size raises :class:`ValueError` naming the input and the
expected shape (``[batch, 4]``). Any real or boolean numpy dtype is accepted and cast to the
input's type, as DL4J casts inputs to the network's data type; strings, objects and complex
numbers are refused.

This module imports only the standard library at import time: the loaded objects create
their (empty) runner slot on every load, a cache hit included.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import onnx

__all__ = [
    "BACKENDS",
    "InputSpec",
    "Runner",
    "Session",
    "cached_session",
    "disabled_optimizers",
]

#: ``"auto"``: onnxruntime if installed, else onnx.reference (with a warning).
BACKENDS = ("auto", "onnxruntime", "reference")


class InputSpec:
    """A graph input: name, numpy dtype and shape (ints, or None for a symbolic size)."""

    __slots__ = ("_fixed", "dtype", "name", "shape", "symbols")

    def __init__(
        self,
        name: str,
        dtype: np.dtype[Any],
        shape: tuple[int | None, ...],
        symbols: tuple[str, ...],
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.symbols = symbols
        self._fixed = tuple((axis, size) for axis, size in enumerate(shape) if size is not None)

    def describe(self) -> str:
        """The expected shape as text, e.g. ``[batch, 4]``."""
        dims = [
            str(d) if d is not None else (s or "?")
            for d, s in zip(self.shape, self.symbols, strict=True)
        ]
        return f"[{', '.join(dims)}]"

    def check(self, value: npt.ArrayLike, what: str) -> np.ndarray[Any, Any]:
        """``value`` as an array of this input's dtype, or ValueError saying what was expected."""
        import numpy as np

        if type(value) is np.ndarray and value.dtype == self.dtype:
            array = value  # the common case: nothing to convert
        else:
            try:
                array = np.asarray(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{what}: input {self.name!r} is not an array: {exc}") from exc
            if array.dtype.kind not in "biuf":
                raise ValueError(
                    f"{what}: input {self.name!r} must be numeric ({self.dtype.name}), "
                    f"got dtype {array.dtype}"
                )
            array = array.astype(self.dtype, copy=False)
        shape = array.shape
        if len(shape) != len(self.shape) or any(shape[i] != size for i, size in self._fixed):
            raise ValueError(
                f"{what}: input {self.name!r} must have shape {self.describe()} "
                f"(rank {len(self.shape)}), got shape {list(array.shape)}"
            )
        return array


def _specs(model: onnx.ModelProto) -> tuple[tuple[InputSpec, ...], tuple[str, ...]]:
    from onnx import helper

    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tensor.shape.dim
        specs.append(
            InputSpec(
                value.name,
                helper.tensor_dtype_to_np_dtype(tensor.elem_type),
                tuple(d.dim_value if d.HasField("dim_value") else None for d in dims),
                tuple(d.dim_param for d in dims),
            )
        )
    return tuple(specs), tuple(o.name for o in model.graph.output)


def disabled_optimizers(model: onnx.ModelProto) -> list[str]:
    """onnxruntime graph rewrites to skip for this model.

    onnxruntime (seen in 1.32) crashes the process while building a session in which a
    FLOAT16 ``Transpose`` (perm [1,0,2] or [1,2,0]) feeds a ``MatMul``: its
    MatmulTransposeFusion rewrite is broken for half precision. Converted HALF networks
    produce that pattern (FeedForwardToRnn, SameDiff ``permute`` then ``mmul``), so the
    fusion is skipped for any model holding a FLOAT16 tensor; other models keep every
    optimisation. Pass the result to ``onnxruntime.InferenceSession(..., disabled_optimizers=)``
    when running an exported half-precision model yourself.
    """
    from onnx import TensorProto

    half = TensorProto.FLOAT16
    graph = model.graph
    if any(t.data_type == half for t in graph.initializer) or any(
        v.type.tensor_type.elem_type == half
        for v in (*graph.input, *graph.output, *graph.value_info)
    ):
        return ["MatmulTransposeFusion"]
    return []


class Session:
    """A compiled model: onnxruntime's ``InferenceSession`` or the reference evaluator."""

    def __init__(self, model: onnx.ModelProto, what: object, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.what = str(what)
        self.inputs, self.outputs = _specs(model)
        self._names = frozenset(spec.name for spec in self.inputs)
        self._output_list = list(self.outputs)
        self._lock = _thread.allocate_lock()
        self._run: Callable[[list[str], dict[str, Any]], list[Any]]
        ort: Any = None
        if backend != "reference":
            try:
                import onnxruntime

                ort = onnxruntime
            except ImportError:
                if backend == "onnxruntime":
                    raise
                import warnings

                warnings.warn(
                    "onnxruntime is not installed: running with onnx.reference (slow); "
                    "install omnihub[run] for onnxruntime",
                    RuntimeWarning,
                    stacklevel=4,
                )
        self.backend = "reference" if ort is None else "onnxruntime"
        if ort is not None:
            try:
                session = ort.InferenceSession(
                    model.SerializeToString(),
                    providers=["CPUExecutionProvider"],
                    disabled_optimizers=disabled_optimizers(model),
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                from omnihub.errors import LoadError

                raise LoadError(
                    f"{what}: onnxruntime cannot load the converted model: {exc}"
                ) from exc
            self._run = session.run
        else:
            from onnx.reference import ReferenceEvaluator

            evaluator = ReferenceEvaluator(model)

            def run(names: list[str], feeds: dict[str, Any]) -> list[Any]:
                with self._lock:  # the evaluator keeps per-run state
                    return list(evaluator.run(names, feeds))

            self._run = run

    def feeds(self, values: Mapping[str, npt.ArrayLike]) -> dict[str, np.ndarray[Any, Any]]:
        """Check ``values`` against the graph inputs; ValueError names what is wrong."""
        if len(values) == len(self._names) and all(name in values for name in self._names):
            return {spec.name: spec.check(values[spec.name], self.what) for spec in self.inputs}
        missing = [s.name for s in self.inputs if s.name not in values]
        unknown = [name for name in values if name not in self._names]
        if missing or unknown:
            wanted = ", ".join(f"{s.name} {s.describe()}" for s in self.inputs)
            problems = []
            if missing:
                problems.append(f"missing {', '.join(map(repr, missing))}")
            if unknown:
                problems.append(f"unknown {', '.join(map(repr, unknown))}")
            raise ValueError(
                f"{self.what}: inputs {'; '.join(problems)} (the model takes: {wanted})"
            )
        return {spec.name: spec.check(values[spec.name], self.what) for spec in self.inputs}

    def run(
        self, values: Mapping[str, npt.ArrayLike], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run on checked inputs; return ``{output name: array}`` for ``outputs`` (default:
        every graph output)."""
        names = self._output_list if outputs is None else list(outputs)
        return dict(zip(names, self._call(names, self.feeds(values)), strict=True))

    def run_one(self, value: npt.ArrayLike) -> np.ndarray[Any, Any]:
        """The first output for the one input ``value`` (MultiLayerNetwork.output's path:
        no dictionaries to build per call)."""
        if len(self.inputs) != 1:
            raise ValueError(f"{self.what}: the model takes {len(self.inputs)} inputs, not 1")
        spec = self.inputs[0]
        result: np.ndarray[Any, Any] = self._call(
            self._output_list[:1], {spec.name: spec.check(value, self.what)}
        )[0]
        return result

    def _call(self, names: list[str], feeds: dict[str, np.ndarray[Any, Any]]) -> list[Any]:
        try:
            return self._run(names, feeds)
        except Exception as exc:  # the backend's own error types
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
            raise ValueError(f"{self.what}: running the model on {shapes} failed: {exc}") from exc


class Runner:
    """The per-object session slot: empty until the first run, then reused.

    ``build`` converts the model (called at most once per runner unless it fails).
    """

    __slots__ = ("_lock", "_session")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._session: Session | None = None

    def session(
        self, build: Callable[[], onnx.ModelProto], what: object, backend: str = "auto"
    ) -> Session:
        """The cached session, built from ``build()`` on first use."""
        session = self._session
        if session is None or (backend not in ("auto", session.backend)):
            with self._lock:
                session = self._session
                if session is None or (backend not in ("auto", session.backend)):
                    session = Session(build(), what, backend)
                    self._session = session
        return session

    def __repr__(self) -> str:
        state = "empty" if self._session is None else self._session.backend
        return f"Runner({state})"


def cached_session(
    slot: dict[str, Any], build: Callable[[], onnx.ModelProto], what: object, backend: str = "auto"
) -> Session:
    """The session cached in ``slot`` (a loaded object's plain-dict slot), built on first use."""
    runner = slot.get("runner")
    if runner is None:
        runner = slot.setdefault("runner", Runner())  # atomic: concurrent callers share one
    session: Session = runner.session(build, what, backend)
    return session
