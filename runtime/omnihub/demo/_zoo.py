"""Build the demo's tiny zoo from scratch: ONNX, SameDiff and DL4J files of one classifier.

Nothing is downloaded or copied: the ONNX file is made with ``onnx.helper``, the SameDiff one
with ``flatbuffers`` (:mod:`omnihub.demo._samediff`) and the DL4J archive is written byte by
byte (``configuration.json`` plus ``coefficients.bin`` in the big-endian ``Nd4j.write``
layout). All three hold the hand-set weights of :mod:`omnihub.demo._iris` (not trained: they
implement a known decision tree), so every run builds identical files with checkable answers.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

from omnihub.demo._iris import LAYERS, rule_weights

__all__ = [
    "dl4j_layer",
    "flat_weights",
    "nd4j_row_vector_header",
    "nd4j_write_row_vector",
    "write_dl4j_mlp",
    "write_onnx_mlp",
    "write_samediff_mlp_file",
]

_FLOAT_EXTRAS = 8192  # ND4J's ArrayOptions flag for FLOAT, as Nd4j.write stores it
_ORDER_C = ord("c")


def flat_weights(order: str) -> list[float]:
    """w0, b0, w1, b1 of the rule, each matrix flattened in C (``"c"``) or Fortran order."""
    w0, b0, w1, b1 = rule_weights()

    def flat(matrix: tuple[tuple[float, ...], ...]) -> list[float]:
        if order == "c":
            return [value for row in matrix for value in row]
        return [row[col] for col in range(len(matrix[0])) for row in matrix]

    return [*flat(w0), *b0, *flat(w1), *b1]


def write_onnx_mlp(path: Path) -> None:
    """Write the rule as ONNX: MatMul, Add, Tanh, MatMul, Add, Softmax."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in, _, n_out = LAYERS
    w0, b0, w1, b1 = rule_weights()

    def tensor(name: str, values: object) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, dtype=np.float32), name)

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Tanh", ["h1"], ["h2"]),
            helper.make_node("MatMul", ["h2", "w2"], ["o0"]),
            helper.make_node("Add", ["o0", "b2"], ["o1"]),
            helper.make_node("Softmax", ["o1"], ["probabilities"], axis=-1),
        ],
        "omnihub_demo_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[tensor("w1", w0), tensor("b1", b0), tensor("w2", w1), tensor("b2", b1)],
        doc_string="The omnihub demo's iris rule (hand-set weights, not trained).",
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


def nd4j_row_vector_header(count: int) -> bytes:
    """What ``Nd4j.write`` puts before the data of a FLOAT row vector ``[1, count]``."""
    shape_info = [2, 1, count, count, 1, _FLOAT_EXTRAS, 1, _ORDER_C]
    return b"".join(
        [
            _utf("MIXED_DATA_TYPES"),
            struct.pack(">q", len(shape_info)),
            _utf("LONG"),
            struct.pack(f">{len(shape_info)}q", *shape_info),
            _utf("MIXED_DATA_TYPES"),
            struct.pack(">q", count),
            _utf("FLOAT"),
        ]
    )


def nd4j_write_row_vector(values: list[float]) -> bytes:
    """``Nd4j.write`` of a FLOAT row vector ``[1, n]``: shape-info buffer, then data buffer."""
    return nd4j_row_vector_header(len(values)) + struct.pack(f">{len(values)}f", *values)


def dl4j_layer(kind: str, n_in: int, n_out: int, activation: str, name: str) -> dict[str, object]:
    """The 1.0 ``@class`` JSON of a DL4J ``DenseLayer`` or ``OutputLayer`` (NLL loss)."""
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


def write_dl4j_mlp(path: Path) -> int:
    """Write the rule as a DL4J ``MultiLayerNetwork`` zip (Dense + Output); return its size.

    DL4J stores each ``W`` ([nIn, nOut]) in Fortran order inside the flat parameter vector.
    """
    n_in, hidden, n_out = LAYERS
    layers = [
        dl4j_layer("DenseLayer", n_in, hidden, "TanH", "hidden"),
        dl4j_layer("OutputLayer", hidden, n_out, "Softmax", "output"),
    ]
    configuration = {
        "backpropType": "Standard",
        "confs": [
            {"dataType": "FLOAT", "layer": layer, "seed": 42, "variables": ["W", "b"]}
            for layer in layers
        ],
        "dataType": "FLOAT",
        "inputPreProcessors": {},
    }
    params = flat_weights("f")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("configuration.json", json.dumps(configuration, indent=2))
        archive.writestr("coefficients.bin", nd4j_write_row_vector(params))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return len(params)


def write_samediff_mlp_file(path: Path) -> int:
    """Write the rule as a SameDiff FlatGraph (.fb); return its parameter count."""
    from omnihub.demo._iris import HIDDEN
    from omnihub.demo._samediff import write_samediff_mlp

    params = flat_weights("c")
    write_samediff_mlp(path, LAYERS, params, hidden_op=HIDDEN)
    return len(params)
