"""libnd4j ``lstmLayer`` -> ONNX ``Scan`` (one per direction), with libnd4j's exact cell.

ONNX's own LSTM differs from libnd4j's in cell clipping (ONNX clips gate inputs, libnd4j clips
the cell state) and ``onnx.reference`` implements only its default activations, so the cell
is written out in a Scan body instead: every activation id (0 tanh .. 10 softplus), peepholes
(i, f on c[t-1], o on c[t]), cell clipping, initial states, sequence lengths (steps past a
row's length output 0 and leave the state unchanged; the backward direction starts at the
row's last valid step), directions fwd/bwd/sum/concat/extra-dim and data formats TNS/NTS/NST.
The input projection ``x @ Wx + b`` is one MatMul over the whole sequence outside the loop.

iArgs: dataFormat, directionMode, gateAct, cellAct, outAct; tArgs: cellClip then the alpha and
beta of each activation that has them; bArgs: hasBiases, hasSeqLen, hasInitH, hasInitC, hasPH,
retFullSeq, retLastH, retLastC; inputs x, Wx, Wr, then b, seqLen, hI, cI, Wp when present.
Gate order in the 4*nOut dimension: i, f, c', o; in the 3*nOut peephole vector: i, f, o.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnihub.convert._builder import OnnxBuilder
from omnihub.convert._errors import Unsupported
from omnihub.convert._samediff_ops import OpContext, register

if TYPE_CHECKING:
    from onnx import GraphProto

__all__ = ["lstm_layer"]

_WITH_ALPHA = frozenset({3, 4, 5, 6, 8})
_WITH_BETA = frozenset({3, 6})
_FLOAT, _INT64, _BOOL, _HALF = 1, 7, 9, 10


class _Act:
    """An activation id with its alpha and beta (tArgs)."""

    def __init__(self, kind: int, alpha: float = 0.0, beta: float = 0.0) -> None:
        if not 0 <= kind <= 10:
            raise Unsupported(f"lstmLayer activation id {kind} (expected 0..10)")
        self.kind, self.alpha, self.beta = kind, alpha, beta

    def emit(self, body: OnnxBuilder, cx: OpContext, x: str, hint: str) -> str:
        k = self.kind
        simple = {0: "Tanh", 1: "Relu", 2: "Sigmoid", 9: "Softsign", 10: "Softplus"}
        if k in simple:
            return body.node(simple[k], [x], hint)
        if k == 3:  # affine: alpha * x + beta
            scaled = body.node("Mul", [x, cx.scalar(self.alpha)], hint)
            return body.node("Add", [scaled, cx.scalar(self.beta)], hint)
        if k == 4:
            return body.node("LeakyRelu", [x], hint, alpha=self.alpha)
        if k == 5:
            return body.node("ThresholdedRelu", [x], hint, alpha=self.alpha)
        if k == 6:  # scaled tanh: alpha * tanh(beta * x)
            inner = body.node("Tanh", [body.node("Mul", [x, cx.scalar(self.beta)], hint)], hint)
            return body.node("Mul", [inner, cx.scalar(self.alpha)], hint)
        if k == 7:  # libnd4j hard sigmoid: clip(0.2 x + 0.5, 0, 1)
            return body.node("HardSigmoid", [x], hint, alpha=0.2, beta=0.5)
        return body.node("Elu", [x], hint, alpha=self.alpha)  # k == 8


class _Config:
    def __init__(self, cx: OpContext) -> None:
        self.data_format = cx.iarg(0, 0)
        self.direction = cx.iarg(1, 0)
        flags = [cx.barg(i, d) for i, d in enumerate((False,) * 5 + (True, False, False))]
        (self.has_bias, self.has_seq, self.has_h, self.has_c, self.has_ph) = flags[:5]
        self.ret_full, self.ret_h, self.ret_c = flags[5:]
        if self.data_format not in (0, 1, 2, 3) or self.direction not in (0, 1, 2, 3, 4):
            raise Unsupported(f"dataFormat {self.data_format}, directionMode {self.direction}")
        if (self.data_format == 3) != (self.direction == 4):
            raise Unsupported("dataFormat 3 goes only with directionMode 4")
        self.clip = cx.targ(0, 0.0)
        count = 1
        acts = []
        for kind in (cx.iarg(2, 2), cx.iarg(3, 0), cx.iarg(4, 0)):
            alpha = beta = 0.0
            if kind in _WITH_ALPHA:
                alpha, count = cx.targ(count, 0.0), count + 1
            if kind in _WITH_BETA:
                beta, count = cx.targ(count, 0.0), count + 1
            acts.append(_Act(kind, alpha, beta))
        self.gate, self.cell, self.out = acts


@register("lstmLayer")
# One branch per optional input/output and per libnd4j argument (direction, format, clipping):
# the op itself has that many switches; splitting them would scatter one op's contract.
def lstm_layer(cx: OpContext) -> list[str]:  # noqa: PLR0912
    """Convert one ``lstmLayer`` op; returns [h if retFullSeq, hL if retLastH, cL if retLastC]."""
    import numpy as np

    cfg = _Config(cx)
    half = cx.dtype == np.float16
    # onnxruntime 1.32 segfaults on the HALF form of this graph (its MatmulTransposeFusion
    # meets the HALF input Transpose feeding the projection): compute in FLOAT, cast back
    if half:
        seq_index = 3 + cfg.has_bias if cfg.has_seq else -1
        cx.ins = [
            v if i == seq_index else cx.node("Cast", [v], to=_FLOAT) for i, v in enumerate(cx.ins)
        ]
        cx.dtype = np.dtype(np.float32)
    x, wx, wr = cx.ins[:3]
    optional: dict[str, str] = {}
    index = 3
    for key, present in (
        ("b", cfg.has_bias),
        ("seq", cfg.has_seq),
        ("h", cfg.has_h),
        ("c", cfg.has_c),
        ("p", cfg.has_ph),
    ):
        if present:
            if index >= len(cx.ins):
                raise Unsupported(f"bArgs announce input {key!r} but the op has {len(cx.ins)}")
            optional[key] = cx.ins[index]
            index += 1
    perm = {0: None, 3: None, 1: [1, 0, 2], 2: [2, 0, 1]}[cfg.data_format]
    xt = x if perm is None else cx.node("Transpose", [x], perm=perm)  # [sL, bS, nIn]
    seq = mask = None
    if "seq" in optional:
        seq = cx.node("Cast", [optional["seq"]], to=_INT64)
        mask = _mask(cx, xt, seq)
    common: dict[str, Any] = {
        "xt": xt,
        "wx": wx,
        "wr": wr,
        "optional": optional,
        "seq": seq,
        "mask": mask,
    }
    if cfg.direction < 2:
        y, h_last, c_last = _direction(cx, cfg, **common, which=None)
    else:
        fwd = _direction(cx, cfg, **common, which=0)
        bwd = _direction(cx, cfg, **common, which=1)
        if cfg.direction == 2:
            y = cx.node("Add", [fwd[0], bwd[0]])
        elif cfg.direction == 3:
            y = cx.node("Concat", [fwd[0], bwd[0]], axis=-1)
        else:
            axis = cx.ints([1])
            y = cx.node(
                "Concat", [cx.node("Unsqueeze", [v, axis]) for v in (fwd[0], bwd[0])], axis=1
            )
        zero = cx.ints([0])
        h_last = cx.node(
            "Concat", [cx.node("Unsqueeze", [v, zero]) for v in (fwd[1], bwd[1])], axis=0
        )
        c_last = cx.node(
            "Concat", [cx.node("Unsqueeze", [v, zero]) for v in (fwd[2], bwd[2])], axis=0
        )
    if cfg.data_format in (1, 2):
        y = cx.node("Transpose", [y], perm=[1, 0, 2] if cfg.data_format == 1 else [1, 2, 0])
    outputs: list[str] = []
    if cfg.ret_full:
        outputs.append(y)
    if cfg.ret_h:
        outputs.append(h_last)
    if cfg.ret_c:
        outputs.append(c_last)
    if half:
        return [cx.node("Cast", [v], to=_HALF) for v in outputs]
    return outputs


def _mask(cx: OpContext, xt: str, seq: str) -> str:
    """[sL, bS, 1] booleans: step t is within row b's length."""
    length = cx.node("Squeeze", [cx.node("Shape", [xt], start=0, end=1), cx.ints([0])])
    steps = cx.node(
        "Range", [cx.b.constant(0, dtype="int64"), length, cx.b.constant(1, dtype="int64")]
    )
    col = cx.node("Unsqueeze", [steps, cx.ints([1])])
    row = cx.node("Unsqueeze", [seq, cx.ints([0])])
    return cx.node("Unsqueeze", [cx.node("Less", [col, row]), cx.ints([2])])


def _reverse(cx: OpContext, value: str, seq: str | None) -> str:
    """Reverse the time axis (each row within its own length when lengths are given)."""
    if seq is not None:
        return cx.node("ReverseSequence", [value, seq], batch_axis=1, time_axis=0)
    big = -(2**62)
    return cx.node("Slice", [value, cx.ints([-1]), cx.ints([big]), cx.ints([0]), cx.ints([-1])])


def _direction(
    cx: OpContext,
    cfg: _Config,
    *,
    xt: str,
    wx: str,
    wr: str,
    optional: dict[str, str],
    seq: str | None,
    mask: str | None,
    which: int | None,
) -> tuple[str, str, str]:
    """One direction's Scan: returns (y [sL, bS, nOut], h at the last step, c at the last step).
    ``which`` selects slice 0 (forward) or 1 (backward) of bidirectional weights."""

    def part(value: str) -> str:
        if which is None:
            return value
        return cx.node("Gather", [value, cx.b.constant(which, dtype="int64")], axis=0)

    backward = which == 1 or (which is None and cfg.direction == 1)
    wx_d, wr_d = part(wx), part(wr)
    xs = _reverse(cx, xt, seq) if backward else xt
    projected = cx.node("MatMul", [xs, wx_d])
    if "b" in optional:
        projected = cx.node("Add", [projected, part(optional["b"])])
    zeros = None
    if "h" not in optional or "c" not in optional:
        batch = cx.node("Shape", [xt], start=1, end=2)
        units = cx.node("Shape", [wr_d], start=0, end=1)
        import numpy as np
        from onnx import numpy_helper

        zero = numpy_helper.from_array(np.zeros(1, dtype=cx.dtype))
        zeros = cx.node("ConstantOfShape", [cx.node("Concat", [batch, units], axis=0)], value=zero)
    h0 = part(optional["h"]) if "h" in optional else zeros
    c0 = part(optional["c"]) if "c" in optional else zeros
    assert h0 is not None
    assert c0 is not None
    peep = None
    if "p" in optional:
        peep = cx.b.node("Split", [part(optional["p"])], 3, axis=-1, num_outputs=3)
    body = _body(cx, cfg, wr_d, peep, masked=mask is not None)
    scan_in = [h0, c0, projected] + ([mask] if mask is not None else [])
    h_last, c_last, y = cx.b.node(
        "Scan",
        scan_in,
        [cx.hint("h"), cx.hint("c"), cx.hint("y")],
        body=body,
        num_scan_inputs=len(scan_in) - 2,
    )
    if backward:
        y = _reverse(cx, y, seq)
    return y, h_last, c_last


def _body(
    cx: OpContext, cfg: _Config, wr: str, peep: list[str] | None, *, masked: bool
) -> GraphProto:
    """The Scan body: (h, c, x@Wx+b at t[, mask at t]) -> (h', c', y_t)."""
    from onnx import helper

    outer = cx.b
    prefix = outer.fresh(cx.hint("cell")) + "/"
    body = OnnxBuilder(prefix, cx.dtype)
    h, c, z_x = (outer.fresh(prefix + n) for n in ("h", "c", "zx"))
    m = outer.fresh(prefix + "m") if masked else None
    hint = prefix + "v"
    z = body.node("Add", [z_x, body.node("MatMul", [h, wr], hint)], hint)
    zi, zf, zg, zo = body.node("Split", [z], [hint] * 4, axis=-1, num_outputs=4)
    if peep is not None:
        zi = body.node("Add", [zi, body.node("Mul", [c, peep[0]], hint)], hint)
        zf = body.node("Add", [zf, body.node("Mul", [c, peep[1]], hint)], hint)
    i = cfg.gate.emit(body, cx, zi, hint)
    f = cfg.gate.emit(body, cx, zf, hint)
    g = cfg.cell.emit(body, cx, zg, hint)
    c_new = body.node("Add", [body.node("Mul", [f, c], hint), body.node("Mul", [i, g], hint)], hint)
    if cfg.clip:
        c_new = body.node("Clip", [c_new, cx.scalar(-cfg.clip), cx.scalar(cfg.clip)], hint)
    if peep is not None:
        zo = body.node("Add", [zo, body.node("Mul", [c_new, peep[2]], hint)], hint)
    o = cfg.gate.emit(body, cx, zo, hint)
    h_new = body.node("Mul", [o, cfg.out.emit(body, cx, c_new, hint)], hint)
    y = h_new
    if m is not None:
        h_new = body.node("Where", [m, h_new, h], hint)
        c_new = body.node("Where", [m, c_new, c], hint)
        y = body.node("Where", [m, y, cx.scalar(0.0)], hint)
    outs = [prefix + "h_out", prefix + "c_out", prefix + "y_out"]
    for value, name in zip((h_new, c_new, y), outs, strict=True):
        body.nodes.append(helper.make_node("Identity", [value], [name], name=name))
    etype = _elem(cx)
    inputs = [helper.make_tensor_value_info(n, etype, [None, None]) for n in (h, c, z_x)]
    if m is not None:
        inputs.append(helper.make_tensor_value_info(m, _BOOL, [None, None]))
    outputs = [helper.make_tensor_value_info(n, etype, [None, None]) for n in outs]
    return helper.make_graph(body.nodes, prefix, inputs, outputs)


def _elem(cx: OpContext) -> int:
    from omnihub.convert._builder import elem_type

    return elem_type(cx.dtype)
