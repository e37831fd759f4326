"""Build the demo's tiny zoo from scratch: an ONNX model and a DL4J ModelSerializer zip.

Nothing is downloaded or copied: the ONNX file is made with ``onnx.helper`` and the DL4J
archive is written byte by byte (``configuration.json`` plus ``coefficients.bin`` in the
big-endian ``Nd4j.write`` layout), so the demo runs on a fresh machine with no network.
Weights come from a fixed-seed generator, so every run builds identical files.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
from pathlib import Path

__all__ = [
    "DL4J_LAYERS",
    "ONNX_LAYERS",
    "SAMEDIFF_LAYERS",
    "nd4j_write_row_vector",
    "write_dl4j_mlp",
    "write_onnx_mlp",
    "write_samediff_mlp_file",
]

#: (inputs, hidden, outputs) of the demo networks: iris-sized classifiers.
ONNX_LAYERS = (4, 16, 3)
DL4J_LAYERS = (4, 8, 3)
SAMEDIFF_LAYERS = (4, 12, 3)

_FLOAT_EXTRAS = 8192  # ND4J's ArrayOptions flag for FLOAT, as Nd4j.write stores it
_ORDER_C = ord("c")


def _weights(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(-1.0, 1.0), 4) for _ in range(count)]


def write_onnx_mlp(path: Path, *, seed: int = 7) -> None:
    """Write a 2-layer perceptron (MatMul, Add, Relu, MatMul, Add, Softmax) as ONNX."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in, hidden, n_out = ONNX_LAYERS

    def tensor(name: str, shape: tuple[int, ...], offset: int) -> onnx.TensorProto:
        size = 1
        for dim in shape:
            size *= dim
        values = np.array(_weights(size, seed + offset), dtype=np.float32).reshape(shape)
        return numpy_helper.from_array(values, name)

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h2"]),
            helper.make_node("MatMul", ["h2", "w2"], ["o0"]),
            helper.make_node("Add", ["o0", "b2"], ["o1"]),
            helper.make_node("Softmax", ["o1"], ["probabilities"], axis=-1),
        ],
        "omnihub_demo_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[
            tensor("w1", (n_in, hidden), 1),
            tensor("b1", (hidden,), 2),
            tensor("w2", (hidden, n_out), 3),
            tensor("b2", (n_out,), 4),
        ],
        doc_string="A tiny classifier the omnihub demo builds itself.",
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="omnihub-demo",
        ir_version=8,
    )
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def _utf(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def nd4j_write_row_vector(values: list[float]) -> bytes:
    """``Nd4j.write`` of a FLOAT row vector ``[1, n]``: shape-info buffer, then data buffer."""
    n = len(values)
    shape_info = [2, 1, n, n, 1, _FLOAT_EXTRAS, 1, _ORDER_C]
    return b"".join(
        [
            _utf("MIXED_DATA_TYPES"),
            struct.pack(">q", len(shape_info)),
            _utf("LONG"),
            struct.pack(f">{len(shape_info)}q", *shape_info),
            _utf("MIXED_DATA_TYPES"),
            struct.pack(">q", n),
            _utf("FLOAT"),
            struct.pack(f">{n}f", *values),
        ]
    )


def _layer(kind: str, n_in: int, n_out: int, activation: str, name: str) -> dict[str, object]:
    layer: dict[str, object] = {
        "@class": f"org.deeplearning4j.nn.conf.layers.{kind}",
        "activationFn": {"@class": f"org.nd4j.linalg.activations.impl.Activation{activation}"},
        "hasBias": True,
        "layerName": name,
        "nin": n_in,
        "nout": n_out,
        "weightInitFn": {"@class": "org.deeplearning4j.nn.weights.WeightInitXavier"},
    }
    if kind == "OutputLayer":
        layer["lossFn"] = {"@class": "org.nd4j.linalg.lossfunctions.impl.LossNegativeLogLikelihood"}
    return layer


def write_dl4j_mlp(path: Path, *, seed: int = 11) -> int:
    """Write a DL4J ``MultiLayerNetwork`` zip (Dense + Output); return its parameter count."""
    n_in, hidden, n_out = DL4J_LAYERS
    layers = [
        _layer("DenseLayer", n_in, hidden, "ReLU", "hidden"),
        _layer("OutputLayer", hidden, n_out, "Softmax", "output"),
    ]
    configuration = {
        "backpropType": "Standard",
        "confs": [
            {"dataType": "FLOAT", "layer": layer, "seed": seed, "variables": ["W", "b"]}
            for layer in layers
        ],
        "dataType": "FLOAT",
        "inputPreProcessors": {},
    }
    count = n_in * hidden + hidden + hidden * n_out + n_out
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("configuration.json", json.dumps(configuration, indent=2))
        archive.writestr("coefficients.bin", nd4j_write_row_vector(_weights(count, seed)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return count


def write_samediff_mlp_file(path: Path, *, seed: int = 5) -> int:
    """Write a SameDiff FlatGraph classifier (.fb); return its parameter count."""
    from omnihub.demo._samediff import write_samediff_mlp

    n_in, hidden, n_out = SAMEDIFF_LAYERS
    count = n_in * hidden + hidden + hidden * n_out + n_out
    write_samediff_mlp(path, SAMEDIFF_LAYERS, _weights(count, seed))
    return count
