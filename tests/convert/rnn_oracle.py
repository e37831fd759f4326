"""Numpy oracles of DL4J's recurrent layers and graph writing, for the RNN/graph tests.

The cells follow ``LSTMHelpers.activateHelper`` and ``SimpleRnn.activateHelper`` line by line
(blocks a, f, o, g in ``W``/``RW``/``b``; GravesLSTM peepholes in ``RW``'s last 3 columns),
written step by step over ``[N, C, T]`` arrays: an implementation independent of the Scan
bodies under test. :func:`write_graph` writes a ComputationGraph ModelSerializer zip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.convert.dl4j_writer import Layer, Param
from tests.loaders.helpers import nd4j_write, write_zip

Array = npt.NDArray[Any]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0.0),
    "softsign": lambda z: z / (1.0 + np.abs(z)),
    "identity": lambda z: z,
    "hardsigmoid": lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0),
    "cube": lambda z: z**3,
}
_CLASSES = {
    "tanh": "ActivationTanH",
    "sigmoid": "ActivationSigmoid",
    "relu": "ActivationReLU",
    "softsign": "ActivationSoftSign",
    "identity": "ActivationIdentity",
    "hardsigmoid": "ActivationHardSigmoid",
    "cube": "ActivationCube",
    "softmax": "ActivationSoftmax",
}
LAYERS = "org.deeplearning4j.nn.conf.layers."


def activation_json(name: str) -> dict[str, str]:
    """The 1.0 JSON of an activation."""
    return {"@class": f"org.nd4j.linalg.activations.impl.{_CLASSES[name]}"}


def close(actual: Any, expected: Any, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """``assert_allclose`` with the issue's bound for FLOAT/DOUBLE models by default."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def softmax(z: Array, axis: int) -> Array:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def lstm(
    x: Array, w: Array, rw: Array, b: Array, *, act: str = "tanh", gate: str = "sigmoid"
) -> Array:
    """DL4J LSTM / GravesLSTM (peepholes when ``rw`` has 4n+3 columns) over [N, C, T]."""
    f_act, f_gate = ACTIVATIONS[act], ACTIVATIONS[gate]
    n = rw.shape[0]
    peep = rw.shape[1] == 4 * n + 3
    h = np.zeros((x.shape[0], n), x.dtype)
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[2]):
        z = x[:, :, t] @ w + h @ rw[:, : 4 * n] + b
        a, f, o, g = (z[:, k * n : (k + 1) * n] for k in range(4))
        if peep:
            f = f + c * rw[:, 4 * n]
            g = g + c * rw[:, 4 * n + 2]
        c = f_gate(f) * c + f_gate(g) * f_act(a)
        if peep:
            o = o + c * rw[:, 4 * n + 1]
        h = f_gate(o) * f_act(c)
        out.append(h)
    return np.stack(out, axis=2)


def simple_rnn(x: Array, w: Array, rw: Array, b: Array, *, act: str = "tanh") -> Array:
    """DL4J SimpleRnn over [N, C, T]."""
    h = np.zeros((x.shape[0], rw.shape[0]), x.dtype)
    out = []
    for t in range(x.shape[2]):
        h = ACTIVATIONS[act](x[:, :, t] @ w + h @ rw + b)
        out.append(h)
    return np.stack(out, axis=2)


def reverse(x: Array) -> Array:
    return np.ascontiguousarray(x[:, :, ::-1])


def bidirectional(forward: Array, backward_of_reversed: Array, mode: str) -> Array:
    """Combine a forward output and the backward copy's output on the reversed input."""
    back = reverse(backward_of_reversed)
    if mode == "CONCAT":
        return np.concatenate([forward, back], axis=1)
    if mode == "ADD":
        return forward + back
    if mode == "MUL":
        return forward * back
    return (forward + back) * 0.5


# -- writing -------------------------------------------------------------------------------------


def recurrent_json(cls: str, n_in: int, n_out: int, act: str, **fields: Any) -> dict[str, Any]:
    """The JSON of a recurrent layer (LSTM, GravesLSTM, SimpleRnn)."""
    package = LAYERS + ("recurrent." if cls == "SimpleRnn" else "")
    return {
        "@class": package + cls,
        "nin": n_in,
        "nout": n_out,
        "activationFn": activation_json(act),
        **fields,
    }


def lstm_params(
    rng: np.random.Generator, n_in: int, n: int, peephole: bool, prefix: str = ""
) -> list[Param]:
    """Random W, RW, b of an LSTM ('f' order, as DL4J stores them)."""
    return [
        Param(f"{prefix}W", rng.normal(0, 0.5, (n_in, 4 * n)), "f"),
        Param(f"{prefix}RW", rng.normal(0, 0.5, (n, 4 * n + (3 if peephole else 0))), "f"),
        Param(f"{prefix}b", rng.normal(0, 0.5, 4 * n), "f"),
    ]


def dense(cls: str, w: Array, b: Array, act: str) -> Layer:
    """A dense-style layer (DenseLayer, OutputLayer, RnnOutputLayer) with W [nIn, nOut], b."""
    params = (Param("W", w, "f"), Param("b", b))
    fields = {"nin": w.shape[0], "nout": w.shape[1], "activationFn": activation_json(act)}
    return Layer(cls, fields, params)


def rnn_params(rng: np.random.Generator, n_in: int, n: int, prefix: str = "") -> list[Param]:
    """Random W, RW, b of a SimpleRnn."""
    return [
        Param(f"{prefix}W", rng.normal(0, 0.5, (n_in, n)), "f"),
        Param(f"{prefix}RW", rng.normal(0, 0.5, (n, n)), "f"),
        Param(f"{prefix}b", rng.normal(0, 0.5, n), "c"),
    ]


def write_graph(
    path: Path,
    inputs: Sequence[str],
    vertices: Sequence[tuple[str, Layer | Mapping[str, Any], Sequence[str]]],
    outputs: Sequence[str],
    dtype: npt.DTypeLike = np.float32,
) -> Path:
    """A ComputationGraph zip. ``vertices`` are ``(name, layer or vertex JSON, inputs)`` in
    DL4J's topological order (parameters are written in that order). A :class:`Layer`'s
    ``cls`` is relative to ``org.deeplearning4j.nn.conf.layers`` unless it starts with
    ``org.``/``com.``; ``fields["preProcessor"]`` goes on the vertex."""
    dt = np.dtype(dtype)
    nd4j = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "HALF"}[dt.name]
    config_vertices: dict[str, Any] = {}
    chunks = []
    for name, spec, _ in vertices:
        if not isinstance(spec, Layer):
            config_vertices[name] = dict(spec)
            continue
        fields = dict(spec.fields)
        pre = fields.pop("preProcessor", None)
        cls = spec.cls if spec.cls.startswith(("org.", "com.")) else LAYERS + spec.cls
        config_vertices[name] = {
            "@class": "org.deeplearning4j.nn.conf.graph.LayerVertex",
            "layerConf": {
                "dataType": nd4j,
                "layer": {"@class": cls, "layerName": name, **fields},
                "variables": [p.key for p in spec.params],
            },
            "preProcessor": pre,
        }
        chunks += [
            p.array.astype(dt).reshape(-1, order="F" if p.order == "f" else "C")
            for p in spec.params
        ]
    config = {
        "dataType": nd4j,
        "networkInputs": list(inputs),
        "networkOutputs": list(outputs),
        "vertexInputs": {name: list(ins) for name, _, ins in vertices},
        "vertices": config_vertices,
    }
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dt)
    return write_zip(
        path,
        {
            "configuration.json": json.dumps(config).encode(),
            "coefficients.bin": nd4j_write(flat.reshape(1, -1)),
        },
    )


def vertex(cls: str, **fields: Any) -> dict[str, Any]:
    """The JSON of a non-layer graph vertex."""
    package = "org.deeplearning4j.nn.conf.graph."
    if cls in ("LastTimeStepVertex", "DuplicateToTimeSeriesVertex", "ReverseTimeSeriesVertex"):
        package += "rnn."
    return {"@class": package + cls, **fields}
