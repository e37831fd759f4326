"""libnd4j ``lstmLayer`` -> ONNX Scan: every direction mode, data format, optional input,
activation and cell clipping, against a row-by-row numpy transcription of libnd4j's
lstmLayerCell/lstmLayerTimeLoop (independent of the masked, batched ONNX formulation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub.errors import LoadError
from omnihub.loaders.samediff import read_flatgraph
from onnx.reference import ReferenceEvaluator

from tests.loaders.helpers import Node, Var, build_flatgraph

Array = npt.NDArray[Any]
PLACEHOLDER, VARIABLE, ARRAY = 3, 0, 2


def _act(kind: int, a: float, b: float) -> Callable[[Array], Array]:
    table: dict[int, Callable[[Array], Array]] = {
        0: np.tanh,
        1: lambda x: np.maximum(x, 0),
        2: lambda x: 1 / (1 + np.exp(-x)),
        3: lambda x: a * x + b,
        4: lambda x: np.where(x < 0, a * x, x),
        5: lambda x: np.where(x > a, x, 0),
        6: lambda x: a * np.tanh(b * x),
        7: lambda x: np.clip(0.2 * x + 0.5, 0, 1),
        8: lambda x: np.where(x > 0, x, a * (np.exp(x) - 1)),
        9: lambda x: x / (1 + np.abs(x)),
        10: lambda x: np.log1p(np.exp(x)),
    }
    return table[kind]


def numpy_direction(
    x: Array,
    w: dict[str, Array],
    *,
    seq: Array | None,
    acts: list[Callable[[Array], Array]],
    clip: float,
    reverse: bool,
) -> tuple[Array, Array, Array]:
    """x [sL, bS, nIn] -> (h [sL, bS, nOut], hL, cL), one batch row at a time."""
    sl, bs, _ = x.shape
    n = w["Wr"].shape[0]
    gate, cell, out = acts
    ys = np.zeros((sl, bs, n))
    h_last, c_last = w["h"].astype(np.float64).copy(), w["c"].astype(np.float64).copy()
    for row in range(bs):
        length = sl if seq is None else int(seq[row])
        h, c = h_last[row], c_last[row]
        for t in reversed(range(length)) if reverse else range(length):
            z = x[t, row] @ w["Wx"] + h @ w["Wr"] + w["b"]
            zi, zf, zg, zo = (z[k * n : (k + 1) * n] for k in range(4))
            zi = zi + c * w["Wp"][:n]
            zf = zf + c * w["Wp"][n : 2 * n]
            c = gate(zf) * c + gate(zi) * cell(zg)
            if clip:
                c = np.clip(c, -clip, clip)
            h = gate(zo + c * w["Wp"][2 * n :]) * out(c)
            ys[t, row] = h
        h_last[row], c_last[row] = h, c
    return ys, h_last, c_last


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    direction = draw(st.integers(0, 4))
    fmt = 3 if direction == 4 else draw(st.integers(0, 2))
    acts, targs = [], []
    for default in (2, 0, 0):
        kind = draw(st.sampled_from([default, default, *range(11)]))
        a = draw(st.sampled_from([0.5, 1.5])) if kind in (3, 4, 5, 6, 8) else 0.0
        b = draw(st.sampled_from([0.25, -0.5])) if kind in (3, 6) else 0.0
        acts.append((kind, a, b))
        targs += [v for v, used in ((a, kind in (3, 4, 5, 6, 8)), (b, kind in (3, 6))) if used]
    return {
        "direction": direction,
        "format": fmt,
        "acts": acts,
        "targs": targs,
        "flags": [draw(st.booleans()) for _ in range(5)],  # bias, seqLen, hI, cI, peepholes
        "clip": draw(st.sampled_from([0.0, 0.0, 0.7])),
        "sizes": (
            draw(st.integers(1, 4)),
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
        ),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cfg=configs())
def test_lstm_layer_matches_libnd4j(cfg: dict[str, Any], tmp_path: Path) -> None:
    rng = np.random.default_rng(cfg["seed"])
    sl, bs, n_in, n = cfg["sizes"]
    bi = cfg["direction"] >= 2
    lead = (2,) if bi else ()
    has_b, has_seq, has_h, has_c, has_p = cfg["flags"]

    def rand(*shape: int) -> Array:
        return rng.standard_normal(shape).astype(np.float32) * 0.7

    x_tns = rand(sl, bs, n_in)
    x = {0: x_tns, 3: x_tns, 1: x_tns.transpose(1, 0, 2), 2: x_tns.transpose(1, 2, 0)}[
        cfg["format"]
    ]
    full = {
        "Wx": rand(*lead, n_in, 4 * n),
        "Wr": rand(*lead, n, 4 * n),
        "b": rand(*lead, 4 * n) if has_b else np.zeros((*lead, 4 * n), np.float32),
        "h": rand(*lead, bs, n) if has_h else np.zeros((*lead, bs, n), np.float32),
        "c": rand(*lead, bs, n) if has_c else np.zeros((*lead, bs, n), np.float32),
        "Wp": rand(*lead, 3 * n) if has_p else np.zeros((*lead, 3 * n), np.float32),
    }
    seq = rng.integers(1, sl + 1, size=bs).astype(np.int32) if has_seq else None
    # the op's inputs by position: x, Wx, Wr, then b, seqLen, hI, cI, Wp when flagged
    named: list[tuple[str, Array | None]] = [("x", None), ("Wx", full["Wx"]), ("Wr", full["Wr"])]
    for key, flag in (("b", has_b), ("seq", has_seq), ("h", has_h), ("c", has_c), ("Wp", has_p)):
        if flag:
            named.append((key, seq if key == "seq" else full[key]))
    variables = [Var("x", PLACEHOLDER, 1, shape=x.shape)]
    for var_id, (name, value) in enumerate(named[1:], start=2):
        code = 9 if name == "seq" else 5
        variables.append(Var(name, VARIABLE, var_id, array=value, dtype_code=code))
    op_id = len(named) + 1
    outs = ("out", "out:1", "out:2")
    variables += [Var(o, ARRAY, op_id, index=k) for k, o in enumerate(outs)]
    iargs = (cfg["format"], cfg["direction"], *(k for k, _, _ in cfg["acts"]))
    bargs = (has_b, has_seq, has_h, has_c, has_p, True, True, True)
    inputs = tuple((i + 1, 0) for i in range(len(named)))
    node = Node(
        op_id,
        "lstm",
        "lstmLayer",
        inputs,
        outs,
        float_args=(cfg["clip"], *cfg["targs"]),
        int_args=iargs,
        bool_args=bargs,
    )
    path = tmp_path / "lstm.fb"
    path.write_bytes(build_flatgraph(variables, [node], placeholders=["x"]))
    model = read_flatgraph(path).to_onnx(list(outs))
    ours = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    ref = ReferenceEvaluator(model).run(None, {"x": x})
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    acts = [_act(*a) for a in cfg["acts"]]

    def part(i: int) -> dict[str, Array]:
        return {k: v[i] for k, v in full.items()} if bi else full

    if bi:
        fwd = numpy_direction(x_tns, part(0), seq=seq, acts=acts, clip=cfg["clip"], reverse=False)
        bwd = numpy_direction(x_tns, part(1), seq=seq, acts=acts, clip=cfg["clip"], reverse=True)
        y = {
            2: fwd[0] + bwd[0],
            3: np.concatenate([fwd[0], bwd[0]], axis=-1),
            4: np.stack([fwd[0], bwd[0]], axis=1),
        }[cfg["direction"]]
        h_last, c_last = np.stack([fwd[1], bwd[1]]), np.stack([fwd[2], bwd[2]])
    else:
        y, h_last, c_last = numpy_direction(
            x_tns, full, seq=seq, acts=acts, clip=cfg["clip"], reverse=cfg["direction"] == 1
        )
    if cfg["format"] == 1:
        y = y.transpose(1, 0, 2)
    elif cfg["format"] == 2:
        y = y.transpose(1, 2, 0)
    for got, want in zip(ours, (y, h_last, c_last), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_inconsistent_format_is_unsupported(tmp_path: Path) -> None:
    variables = [
        Var("x", PLACEHOLDER, 1, shape=(2, 1, 3)),
        Var("Wx", VARIABLE, 2, array=np.zeros((3, 8), np.float32)),
        Var("Wr", VARIABLE, 3, array=np.zeros((2, 8), np.float32)),
        Var("y", ARRAY, 4),
    ]
    node = Node(
        4,
        "lstm",
        "lstmLayer",
        ((1, 0), (2, 0), (3, 0)),
        ("y",),
        int_args=(3, 0, 2, 0, 0),
        bool_args=(False,) * 5 + (True, False, False),
    )
    path = tmp_path / "bad_lstm.fb"
    path.write_bytes(build_flatgraph(variables, [node], placeholders=["x"]))
    with pytest.raises(LoadError, match=r"lstmLayer.*dataFormat 3 goes only with directionMode 4"):
        read_flatgraph(path).to_onnx()
