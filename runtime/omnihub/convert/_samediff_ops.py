"""The SameDiff op-converter registry: :class:`OpContext`, :data:`OPS`, :func:`register`.

One function per libnd4j op lives in ``_samediff_elementwise``, ``_samediff_tensor``,
``_samediff_cnn`` and ``_samediff_lstm``; :func:`converters` imports them (registering their
ops) and returns the registry. Each converter gets an :class:`OpContext` (the builder, the op
with its iArgs/tArgs/bArgs and properties, its inputs as ONNX value names) and returns the ONNX
names of the op's outputs in order. Argument orders are libnd4j's (``CUSTOM_OP_IMPL`` in
``ops/declarable/generic``): e.g. conv2d iArgs ``kH,kW,sH,sW,pH,pW,dH,dW,isSameMode,dataFormat,
wFormat``. An op or option with no ONNX mapping raises
:class:`~omnihub.convert._errors.Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from omnihub.convert._errors import Unsupported

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from omnihub.convert._builder import OnnxBuilder
    from omnihub.loaders.samediff import SameDiffOp

__all__ = ["LOSS_OPS", "OPS", "Converter", "OpContext", "register"]


class OpContext:
    """What a converter needs: builder, op, ONNX input names, static values, ranks, dtypes."""

    def __init__(
        self,
        builder: OnnxBuilder,
        op: SameDiffOp,
        inputs: Sequence[str],
        *,
        static: Callable[[str], npt.NDArray[Any] | None],
        rank: Callable[[str], int],
        dtype: np.dtype[Any],
    ) -> None:
        self.b = builder
        self.op = op
        self.ins = list(inputs)
        self._static = static
        self._rank = rank
        self.dtype = dtype  # the dtype of the op's first output

    def iarg(self, index: int, default: int) -> int:
        """iArg ``index`` (libnd4j INT_ARG), or ``default`` when absent."""
        args = self.op.int_args
        return int(args[index]) if len(args) > index else default

    def targ(self, index: int, default: float) -> float:
        """tArg ``index`` (libnd4j T_ARG), or ``default`` when absent."""
        args = self.op.float_args
        return float(args[index]) if len(args) > index else default

    def barg(self, index: int, default: bool) -> bool:
        """bArg ``index`` (libnd4j B_ARG), or ``default`` when absent."""
        args = self.op.bool_args
        return bool(args[index]) if len(args) > index else default

    def prop(self, name: str) -> object | None:
        """The first value of the SameDiff property ``name`` (None when absent or empty)."""
        values = self.op.properties.get(name, ())
        return values[0] if values else None

    def static(self, index: int) -> npt.NDArray[Any] | None:
        """The value of input ``index`` when it is a stored constant or weight, else None."""
        return self._static(self.op.inputs[index]) if index < len(self.ins) else None

    def rank(self, index: int) -> int:
        """The rank of input ``index`` (from declared shapes or ONNX shape inference)."""
        return self._rank(self.ins[index])

    def node(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        """One single-output node named after this op."""
        return self.b.node(op_type, inputs, self.hint(op_type), **attrs)

    def hint(self, what: str) -> str:
        return f"{self.op.name}/{what}"

    def ints(self, values: Sequence[int]) -> str:
        """An int64 vector constant."""
        import numpy as np

        return self.b.constant(np.asarray(list(values), dtype=np.int64), name=self.hint("ints"))

    def scalar(self, value: float) -> str:
        """A scalar of this op's output dtype."""
        return self.b.constant(value, dtype=self.dtype, name=self.hint("scalar"))

    def along_axis(self, vector: str, axis: int, rank: int) -> str:
        """``vector`` [C] shaped to broadcast along ``axis`` of a rank-``rank`` value."""
        trailing = rank - 1 - axis % rank
        if trailing == 0:
            return vector
        return self.node("Unsqueeze", [vector, self.ints(range(1, trailing + 1))])

    def int_values(self, index: int, what: str) -> list[int]:
        """The integer values of input ``index``, which must be a stored constant."""
        value = self.static(index)
        if value is None:
            raise Unsupported(f"{what} (input {index}) must be a constant")
        return [int(v) for v in value.reshape(-1)]

    def dims(self) -> list[int] | None:
        """Reduction dimensions: the node's dimensions, iArgs, or a constant 2nd input; None
        means every dimension."""
        if self.op.dimensions:
            return list(self.op.dimensions)
        if len(self.ins) > 1:
            return self.int_values(1, "dimensions")
        if self.op.int_args:
            return [int(v) for v in self.op.int_args]
        return None


Converter = Callable[[OpContext], list[str]]
OPS: dict[str, Converter] = {}

#: Loss ops: training only; never part of the inference graph.
LOSS_OPS = frozenset(
    {
        "log_loss",
        "absolute_difference_loss",
        "cosine_distance_loss",
        "hinge_loss",
        "huber_loss",
        "l2_loss",
        "log_poisson_loss",
        "mean_pairwssqerr_loss",
        "mean_sqerr_loss",
        "sigm_cross_entropy_loss",
        "softmax_cross_entropy_loss",
        "softmax_cross_entropy_loss_with_logits",
        "sparse_softmax_cross_entropy_loss_with_logits",
        "ctc_loss",
    }
)


def register(*names: str) -> Callable[[Converter], Converter]:
    """Decorator: register a converter under one or more SameDiff op names."""

    def wrap(fn: Converter) -> Converter:
        for name in names:
            OPS[name] = fn
        return fn

    return wrap
