"""SameDiff FlatGraph loader: the real 2020 files, constructed graphs, and the containers."""

from __future__ import annotations

import struct
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from omnihub._enums import Format
from omnihub.errors import LoadError
from omnihub.loaders import load
from omnihub.loaders.samediff import SameDiffGraph, VariableKind, read_flatgraph

from .helpers import DTYPE_CODES, Node, Var, build_flatgraph, make_entry, shared_dir

# file -> (variables, (PLACEHOLDER, VARIABLE, CONSTANT, ARRAY), ops), from SOURCES.md
REAL_FILES = {
    "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb": (14, (2, 4, 1, 7), 7),
    "Cnn3dSynthetic_Model_RANDOM_INIT_UNTRAINED.fb": (15, (2, 4, 1, 8), 8),
    "RnnCsvSequenceClassification1_Model_RANDOM_INIT_UNTRAINED.fb": (19, (2, 8, 1, 8), 6),
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_file_counts(name: str) -> None:
    path = shared_dir("samediff") / name
    graph = load(make_entry(Format.SAMEDIFF, file=name), path)
    assert isinstance(graph, SameDiffGraph)
    n_vars, (n_ph, n_var, n_const, n_array), n_ops = REAL_FILES[name]
    kinds = Counter(v.kind for v in graph.variables)
    assert len(graph.variables) == n_vars
    assert kinds == {
        VariableKind.PLACEHOLDER: n_ph,
        VariableKind.VARIABLE: n_var,
        VariableKind.CONSTANT: n_const,
        VariableKind.ARRAY: n_array,
    }
    assert len(graph.ops) == n_ops
    assert graph.placeholders == ("in", "label")
    assert graph.loss_variables == ("loss",)
    # every op input and output names a variable of the graph
    names = {v.name for v in graph.variables}
    for op in graph.ops:
        assert set(op.inputs) <= names, op
        assert set(op.outputs) <= names, op
    for array in graph.arrays.values():
        assert array.dtype == np.float32
        assert np.isfinite(array).all()
        assert not array.flags.writeable


def test_mlp_moon_graph_in_detail() -> None:
    graph = read_flatgraph(shared_dir("samediff") / "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb")
    assert {k: v.shape for k, v in graph.weights.items()} == {
        "w0": (2, 20),
        "b0": (20,),
        "w1": (20, 2),
        "b1": (2,),
    }
    assert [op.op_name for op in graph.ops] == [
        "mmul",
        "add",
        "relu",
        "mmul",
        "add",
        "softmax",
        "log_loss",
    ]
    assert graph.ops[0].inputs == ("in", "w0")
    assert graph.variable("in").shape == (-1, 2)
    assert graph.variable("in").kind is VariableKind.PLACEHOLDER
    assert graph.variable("w0").dtype == "FLOAT"
    # Big-endian floats read as big-endian: random-uniform init values in [0, 1), which a
    # little-endian misread of these bytes would not give.
    assert ((graph.weights["w0"] >= 0) & (graph.weights["w0"] < 1)).all()
    assert float(graph.arrays["sd_var"]) == 1.0  # the constant log_loss weight
    assert graph.training_config is not None
    assert graph.training_config["updater"]["@class"].endswith("Nesterovs")
    # an MLP forward pass over the loaded weights has the declared output shape
    x = np.ones((5, 2), dtype=np.float32)
    hidden = np.maximum(x @ graph.weights["w0"] + graph.weights["b0"], 0)
    assert (hidden @ graph.weights["w1"] + graph.weights["b1"]).shape == (5, 2)


def test_lstm_op_has_three_outputs() -> None:
    name = "RnnCsvSequenceClassification1_Model_RANDOM_INIT_UNTRAINED.fb"
    graph = read_flatgraph(shared_dir("samediff") / name)
    lstm = graph.ops[0]
    assert lstm.op_name == "lstmLayer"
    assert lstm.outputs == ("lstmLayer", "lstmLayer:1", "lstmLayer:2")
    assert graph.weights["weights"].shape == (60, 28)
    assert graph.weights["rWeights"].shape == (7, 28)


def _write(tmp_path: Path, data: bytes, name: str = "model.fb") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_placeholder_only_graph(tmp_path: Path) -> None:
    """A graph with only an input placeholder (four omnihub-zoo files) is refused, named.

    More cases: tests/loaders/test_upstream_files.py.
    """
    data = build_flatgraph([Var("input", 3, -1, shape=(-1, 3, 224, 224))], placeholders=["input"])
    with pytest.raises(LoadError, match=r"model\.fb: an empty upstream placeholder"):
        read_flatgraph(_write(tmp_path, data))


arrays = hnp.arrays(
    dtype=st.sampled_from(sorted(DTYPE_CODES)),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
    elements={"allow_nan": False},
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    array=arrays,
    big_endian=st.booleans(),
    order=st.sampled_from("cf"),
)
def test_array_round_trip(tmp_path: Path, array: Any, big_endian: bool, order: str) -> None:
    """Any array written as a FlatArray (either byte order, either element order) reads back."""
    code = DTYPE_CODES[str(array.dtype)]
    var = Var("w", 0, 1, array=array, dtype_code=code, big_endian=big_endian, order=order)
    graph = read_flatgraph(_write(tmp_path, build_flatgraph([var])))
    got = graph.weights.get("w")
    if array.size == 0:  # an empty buffer carries no data
        assert got is None
        assert graph.variables[0].shape == array.shape
    else:
        assert got is not None
        assert got.dtype == array.dtype
        assert got.dtype.isnative
        np.testing.assert_array_equal(got, array)


def test_op_wiring_round_trip(tmp_path: Path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = build_flatgraph(
        [Var("in", 3, -1, shape=(-1, 2)), Var("w", 0, 1, array=w), Var("out", 2, 2)],
        [Node(2, "matmul", "mmul", ((-1, 0), (1, 0)), ("out",))],
        placeholders=["in"],
        outputs=[(2, 0)],
        training_config='{"updater": {"@class": "Adam"}}',
    )
    graph = read_flatgraph(_write(tmp_path, data))
    assert graph.ops[0].inputs == ("in", "w")
    assert graph.ops[0].outputs == ("out",)
    assert graph.ops[0].op_type == "CUSTOM"
    assert graph.outputs == ("out",)
    assert graph.training_config == {"updater": {"@class": "Adam"}}


def test_outputs_without_names_come_from_variable_ids(tmp_path: Path) -> None:
    """Files without ``outputNames`` name an op's outputs by the (node, index) variable ids."""
    data = build_flatgraph(
        [
            Var("in", 3, -1),
            Var("second", 2, 5, index=1),
            Var("first", 2, 5, index=0),
            Var("other", 2, 6),
        ],
        [Node(5, "split", "split", ((-1, 0),), ())],
    )
    graph = read_flatgraph(_write(tmp_path, data))
    assert graph.ops[0].outputs == ("first", "second")


def test_unknown_input_reference_is_an_error(tmp_path: Path) -> None:
    data = build_flatgraph([Var("in", 3, -1)], [Node(2, "op", "relu", ((7, 0),), ("x",))])
    with pytest.raises(LoadError, match=r"inputPaired\[0\].*unknown variable id \(7, 0\)"):
        read_flatgraph(_write(tmp_path, data))


def test_buffer_size_mismatch_is_an_error(tmp_path: Path) -> None:
    data = bytearray(build_flatgraph([Var("w", 0, 1, array=np.zeros((2, 3), np.float32))]))
    # claim a 3x3 array (the shape-info longs are written little-endian by FlatBuffers)
    idx = data.find(struct.pack("<3q", 2, 2, 3))
    assert idx > 0
    data[idx : idx + 24] = struct.pack("<3q", 2, 3, 3)
    with pytest.raises(LoadError, match=r"model\.fb.*buffer at offset \d+: 24 bytes, expected 36"):
        read_flatgraph(_write(tmp_path, bytes(data)))


def test_forged_huge_shape_is_bounded(tmp_path: Path) -> None:
    data = bytearray(build_flatgraph([Var("w", 0, 1, array=np.zeros((2, 3), np.float32))]))
    idx = data.find(struct.pack("<3q", 2, 2, 3))
    data[idx : idx + 24] = struct.pack("<3q", 2, 2**40, 2**20)
    with pytest.raises(LoadError, match=r"more than the .* the file can hold"):
        read_flatgraph(_write(tmp_path, bytes(data)))


def test_shared_string_amplification_is_bounded(tmp_path: Path) -> None:
    """Many variables naming one large shared string cannot make us copy it many times."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    shared = builder.CreateString("x" * 100_000)
    tables = []
    for _ in range(200):
        builder.StartObject(10)
        builder.PrependUOffsetTRelativeSlot(1, shared, 0)
        builder.PrependInt8Slot(6, 2, 0)
        tables.append(builder.EndObject())
    builder.StartVector(4, len(tables), 4)
    for table in reversed(tables):
        builder.PrependUOffsetTRelative(table)
    variables = builder.EndVector()
    builder.StartObject(9)
    builder.PrependUOffsetTRelativeSlot(1, variables, 0)
    builder.Finish(builder.EndObject())
    path = _write(tmp_path, bytes(builder.Output()))
    assert path.stat().st_size < 110_000
    with pytest.raises(LoadError, match=r"model\.fb: .*read more than 4x the buffer size"):
        read_flatgraph(path)


def test_sdnb_container_is_rejected_clearly(tmp_path: Path) -> None:
    flat = build_flatgraph([Var("in", 3, -1)])
    header = b"SDNB" + struct.pack(">iqqq", 1, 32 + len(flat), 0, 32)
    path = _write(tmp_path, header + flat, "model.sdnb")
    with pytest.raises(LoadError, match=r"model\.sdnb: unsupported format: SameDiff \.sdnb"):
        load(make_entry(Format.SAMEDIFF), path)


def test_sdz_container_is_rejected_clearly(tmp_path: Path) -> None:
    path = tmp_path / "model.sdz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.sdnb", b"SDNB" + bytes(28))
    with pytest.raises(LoadError, match=r"model\.sdz: unsupported format: a zip archive"):
        read_flatgraph(path)


@pytest.mark.parametrize("data", [b"", b"\x00" * 4, b"\xff" * 64, b"not a flatbuffer at all"])
def test_garbage_is_a_load_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(LoadError, match=r"model\.fb"):
        read_flatgraph(_write(tmp_path, data))


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot read SameDiff file"):
        read_flatgraph(tmp_path / "absent.fb")
